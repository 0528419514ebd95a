INSERT INTO dead_letters (job_id, queue, died_at, error, attempts, replay_count)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (job_id) DO UPDATE
SET queue = excluded.queue,
    died_at = excluded.died_at,
    error = excluded.error,
    attempts = excluded.attempts,
    replay_count = excluded.replay_count
