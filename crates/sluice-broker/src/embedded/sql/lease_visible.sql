-- Leases up to ?6 visible deliveries (expired leases, released messages).
-- ?3 = now, ?4 = lease end, ?5 = receipt. First statement of the transaction:
-- a write.
UPDATE deliveries
SET visible_at = ?4, receipt = ?5, delivery_count = delivery_count + 1
WHERE topic = ?1 AND grp = ?2 AND seq IN (
    SELECT seq FROM deliveries
    WHERE topic = ?1 AND grp = ?2 AND visible_at <= ?3
    ORDER BY visible_at, seq
    LIMIT ?6
)
RETURNING seq, delivery_count
