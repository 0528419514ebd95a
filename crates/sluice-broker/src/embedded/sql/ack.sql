-- ?3: JSON array of [seq, receipt] pairs. A pair whose receipt no longer
-- matches (lease expired and taken by someone else) deletes nothing.
DELETE FROM deliveries
WHERE topic = ?1 AND grp = ?2 AND (seq, receipt) IN (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?3)
)
