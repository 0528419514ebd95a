-- ?3: JSON array of [seq, receipt] pairs; ?4: when they become visible again.
-- Receipt 0: nobody holds them, a stale ack of the releaser is a no-op.
UPDATE deliveries
SET visible_at = ?4, receipt = 0
WHERE topic = ?1 AND grp = ?2 AND (seq, receipt) IN (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?3)
)
