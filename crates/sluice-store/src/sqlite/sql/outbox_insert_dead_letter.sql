-- ?1 job id, ?2 queue, ?3 attempt that died, ?4 error, ?5 now: the dead
-- letter's publication to the queue's dead-letter topic, due at once.
INSERT INTO outbox (job_id, queue, attempt, available_at, created_at, kind, error)
VALUES (?1, ?2, ?3, ?5, ?5, 'dead_letter', ?4)
