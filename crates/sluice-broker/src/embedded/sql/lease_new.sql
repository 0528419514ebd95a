-- Hands up to ?6 messages past the group's cursor (?3) to the group, leased
-- until ?4 under receipt ?5.
INSERT INTO deliveries (topic, grp, seq, visible_at, receipt, delivery_count)
SELECT ?1, ?2, seq, ?4, ?5, 1
FROM messages
WHERE topic = ?1 AND seq > ?3
ORDER BY seq
LIMIT ?6
RETURNING seq, delivery_count
