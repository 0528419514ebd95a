-- $1 job id
SELECT id, queue, status, payload::text AS payload, key, headers::text AS headers,
       traceparent, max_attempts, attempts, last_error,
       replay_count, created_at, updated_at
FROM jobs
WHERE id = $1
