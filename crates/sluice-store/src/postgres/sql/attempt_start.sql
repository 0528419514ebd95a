-- $1 lease until, $2 now, $3 job ids, $4 lease tokens, $5 attempts seen.
-- Each job appears once; its row is locked by this transaction.
UPDATE jobs
SET attempts = jobs.attempts + 1,
    lease_token = u.token,
    lease_until = $1,
    attempt_started_at = $2,
    status = 'published',
    updated_at = $2
FROM UNNEST($3::uuid[], $4::text[], $5::bigint[]) AS u(id, token, seen)
WHERE jobs.id = u.id AND jobs.attempts = u.seen
RETURNING jobs.id, jobs.queue, jobs.status, jobs.payload::text AS payload, jobs.key,
          jobs.headers::text AS headers, jobs.traceparent, jobs.max_attempts,
          jobs.attempts, jobs.last_error, jobs.replay_count, jobs.created_at,
          jobs.updated_at
