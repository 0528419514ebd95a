-- $1 lease until, $2 now, then per start (each job once, its row locked by
-- this transaction): $3 job ids, $4 new lease tokens, and the state the
-- start was decided on: $5 attempts, $6 lease tokens, $7 lease ends,
-- $8 replay counts. Only jobs still in that state and not final start;
-- they come back.
UPDATE jobs
SET attempts = jobs.attempts + 1,
    lease_token = u.token,
    lease_until = $1,
    attempt_started_at = $2,
    status = 'published',
    updated_at = $2
FROM UNNEST($3::uuid[], $4::text[], $5::bigint[], $6::text[], $7::bigint[], $8::bigint[])
    AS u(id, token, seen, seen_token, seen_until, seen_replays)
WHERE jobs.id = u.id
  AND jobs.attempts = u.seen
  AND jobs.lease_token IS NOT DISTINCT FROM u.seen_token
  AND jobs.lease_until IS NOT DISTINCT FROM u.seen_until
  AND jobs.replay_count = u.seen_replays
  AND jobs.status IN ('pending', 'published', 'retrying')
RETURNING jobs.id, jobs.queue, jobs.status, jobs.payload::text AS payload, jobs.key,
          jobs.headers::text AS headers, jobs.traceparent, jobs.max_attempts,
          jobs.attempts, jobs.last_error,
          jobs.replay_count, jobs.created_at, jobs.updated_at
