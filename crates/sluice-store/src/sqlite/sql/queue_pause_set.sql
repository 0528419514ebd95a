-- ?1 queue, ?2 paused (0/1), ?3 now
INSERT INTO queue_state (queue, paused, updated_at)
VALUES (?1, ?2, ?3)
ON CONFLICT (queue) DO UPDATE
SET paused = excluded.paused,
    updated_at = excluded.updated_at
