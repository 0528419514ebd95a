-- Deletes messages every group of the topic has acked: handed to all groups
-- (seq <= smallest cursor) and no delivery row left. A topic without groups
-- keeps everything. At most ?2 rows per call.
DELETE FROM messages WHERE seq IN (
    SELECT m.seq FROM messages m
    WHERE m.topic = ?1
      AND m.seq <= (SELECT MIN(cursor) FROM consumer_groups WHERE topic = ?1)
      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.topic = ?1 AND d.seq = m.seq)
    ORDER BY m.seq
    LIMIT ?2
)
