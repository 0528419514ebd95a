-- $1 lease until, $2 now, $3 job ids, $4 lease tokens, $5 attempts seen.
-- Each job appears once. Starts the next attempt of each job that has seen
-- that many attempts, is not finished and has no live lease; returns the
-- jobs started. Run after locking and deciding (start.rs), the conditions
-- hold already; run alone, they are the common start rule in one statement,
-- and a job they leave alone is decided by the full path.
-- The redundant id condition lets the planner fetch the batch's jobs by
-- primary key; see jobs_state_lock.sql for its form.
UPDATE jobs
SET attempts = jobs.attempts + 1,
    lease_token = u.token,
    lease_until = $1,
    attempt_started_at = $2,
    status = 'published',
    updated_at = $2
FROM UNNEST($3::uuid[], $4::text[], $5::bigint[]) AS u(id, token, seen)
WHERE jobs.id = u.id AND jobs.attempts = u.seen
  AND jobs.id = ANY (ARRAY(SELECT unnest($3::uuid[])))
  AND jobs.status NOT IN ('succeeded', 'dead')
  AND (jobs.lease_token IS NULL OR jobs.lease_until IS NULL OR jobs.lease_until < $2)
RETURNING jobs.id, jobs.queue, jobs.status, jobs.payload::text AS payload, jobs.key,
          jobs.headers::text AS headers, jobs.traceparent, jobs.max_attempts,
          jobs.attempts, jobs.last_error, jobs.replay_count, jobs.created_at,
          jobs.updated_at
