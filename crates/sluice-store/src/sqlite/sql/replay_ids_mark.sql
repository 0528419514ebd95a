-- ?1 replay id, ?2 first position, ?3 end position (exclusive).
UPDATE replay_ids
SET taken = 1
WHERE replay_id = ?1 AND idx >= ?2 AND idx < ?3 AND taken = 0
