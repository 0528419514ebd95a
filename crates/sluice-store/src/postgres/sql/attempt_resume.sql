-- $1 lease until, $2 now, $3 job ids, $4 lease tokens, $5 attempts seen.
-- Hands back the attempts these tokens' leases hold (each started by an
-- earlier ask whose answer was lost): their leases run from now, nothing is
-- counted. Run after locking and deciding (start.rs). Returns the jobs.
-- The redundant id condition lets the planner fetch the batch's jobs by
-- primary key; see jobs_state_lock.sql for its form.
UPDATE jobs
SET lease_until = $1,
    updated_at = $2
FROM UNNEST($3::uuid[], $4::text[], $5::bigint[]) AS u(id, token, seen)
WHERE jobs.id = u.id AND jobs.lease_token = u.token AND jobs.attempts = u.seen
  AND jobs.id = ANY (ARRAY(SELECT unnest($3::uuid[])))
  AND jobs.status NOT IN ('succeeded', 'dead')
RETURNING jobs.id, jobs.queue, jobs.status, jobs.payload::text AS payload, jobs.key,
          jobs.headers::text AS headers, jobs.traceparent, jobs.max_attempts,
          jobs.attempts, jobs.last_error, jobs.replay_count, jobs.created_at,
          jobs.updated_at
