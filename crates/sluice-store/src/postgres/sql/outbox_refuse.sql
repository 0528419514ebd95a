-- $1 now, $2 lease token, then per row: $3 row ids, $4 reasons.
-- Job rows the broker refused for good: removes those the lease still
-- holds and makes their jobs dead with the reason, unless a worker has
-- started this attempt (or a later one) or holds the job. Returns the jobs
-- made dead, for their dead letters (dead_letter_upsert.sql) and dead
-- letters' rows (outbox_insert_dead_letter.sql).
WITH gone AS (
    DELETE FROM outbox AS o
    USING UNNEST($3::bigint[], $4::text[]) AS u(row_id, reason)
    WHERE o.row_id = u.row_id AND o.lease_token = $2 AND o.kind = 'job'
    RETURNING o.job_id, o.attempt, u.reason
)
UPDATE jobs
SET status = 'dead',
    last_error = g.reason,
    lease_token = NULL,
    lease_until = NULL,
    due_at = NULL,
    updated_at = $1
FROM gone AS g
WHERE jobs.id = g.job_id
  AND jobs.status IN ('pending', 'published', 'retrying')
  AND jobs.attempts = g.attempt - 1
  AND (jobs.lease_token IS NULL OR jobs.lease_until IS NULL OR jobs.lease_until < $1)
RETURNING jobs.id, jobs.queue, jobs.attempts, jobs.replay_count, g.reason
