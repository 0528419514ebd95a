-- ?1 lease token, ?2 lease until, ?3 now, ?4 job id, ?5 attempts seen
UPDATE jobs
SET attempts = attempts + 1,
    lease_token = ?1,
    lease_until = ?2,
    attempt_started_at = ?3,
    status = 'published',
    updated_at = ?3
WHERE id = ?4 AND attempts = ?5
RETURNING id, queue, status, payload, key, headers, traceparent, max_attempts, attempts,
          lease_token, lease_until, last_error, replay_count, created_at, updated_at
