-- $1 job ids: the jobs, locked until the transaction ends (in id order, so
-- concurrent batches do not deadlock on each other).
SELECT id, queue, status, payload::text AS payload, key, headers::text AS headers,
       traceparent, max_attempts, attempts, lease_token, lease_until, last_error,
       replay_count, created_at, updated_at
FROM jobs
WHERE id = ANY($1)
ORDER BY id
FOR UPDATE
