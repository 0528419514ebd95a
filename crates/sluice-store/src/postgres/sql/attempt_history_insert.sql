-- $1 finished at, then per attempt: $2 job ids, $3 replay counts, $4 attempts,
-- $5 started at, $6 outcomes, $7 errors
INSERT INTO attempts (job_id, replay_count, attempt, started_at, finished_at, outcome, error)
SELECT u.job_id, u.replay_count, u.attempt, u.started_at, $1, u.outcome, u.error
FROM UNNEST($2::uuid[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::text[])
    AS u(job_id, replay_count, attempt, started_at, outcome, error)
ON CONFLICT (job_id, replay_count, attempt) DO UPDATE
SET started_at = excluded.started_at,
    finished_at = excluded.finished_at,
    outcome = excluded.outcome,
    error = excluded.error
