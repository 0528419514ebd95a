INSERT INTO attempts (job_id, replay_count, attempt, started_at, finished_at, outcome, error)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (job_id, replay_count, attempt) DO UPDATE
SET started_at = excluded.started_at,
    finished_at = excluded.finished_at,
    outcome = excluded.outcome,
    error = excluded.error
