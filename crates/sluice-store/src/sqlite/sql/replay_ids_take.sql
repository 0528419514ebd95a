-- ?1 replay id, ?2 first position, ?3 end position (exclusive).
-- Every snapshot entry of the range in order, `taken` saying whether an
-- earlier call took it; the caller marks them taken in the same (write)
-- transaction with replay_ids_mark.sql.
SELECT job_id, taken
FROM replay_ids
WHERE replay_id = ?1 AND idx >= ?2 AND idx < ?3
ORDER BY idx
