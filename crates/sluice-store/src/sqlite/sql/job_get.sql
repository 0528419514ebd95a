SELECT id, queue, status, payload, key, headers, traceparent, max_attempts, attempts,
       lease_token, lease_until, last_error, replay_count, created_at, updated_at
FROM jobs
WHERE id = ?1
