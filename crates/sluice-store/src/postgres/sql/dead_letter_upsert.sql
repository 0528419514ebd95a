-- $1 died at, then per job: $2 job ids, $3 queues, $4 errors, $5 attempts,
-- $6 replay counts
INSERT INTO dead_letters (job_id, queue, died_at, error, attempts, replay_count)
SELECT u.job_id, u.queue, $1, u.error, u.attempts, u.replay_count
FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])
    AS u(job_id, queue, error, attempts, replay_count)
ON CONFLICT (job_id) DO UPDATE
SET queue = excluded.queue,
    died_at = excluded.died_at,
    error = excluded.error,
    attempts = excluded.attempts,
    replay_count = excluded.replay_count
