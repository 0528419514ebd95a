-- $1 now, $2 job ids to replay (dead letters locked by this transaction):
-- a fresh run (last_error kept), the dead letter removed. Returns the jobs
-- replayed.
WITH d AS (
    DELETE FROM dead_letters WHERE job_id = ANY($2) RETURNING job_id
)
UPDATE jobs
SET status = 'pending',
    replay_count = replay_count + 1,
    attempts = 0,
    lease_token = NULL,
    lease_until = NULL,
    attempt_started_at = NULL,
    updated_at = $1,
    due_at = $1
FROM d
WHERE jobs.id = d.job_id AND jobs.status = 'dead'
RETURNING jobs.id
