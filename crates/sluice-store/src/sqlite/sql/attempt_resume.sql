-- ?1 lease token, ?2 lease until, ?3 now, ?4 job id, ?5 attempts seen
-- Hands back the attempt the token's lease holds (started by an earlier ask
-- whose answer was lost): its lease runs from now, nothing is counted.
UPDATE jobs
SET lease_until = ?2,
    updated_at = ?3
WHERE id = ?4 AND lease_token = ?1 AND attempts = ?5
  AND status NOT IN ('succeeded', 'dead')
RETURNING id, queue, status, payload, key, headers, traceparent, max_attempts, attempts,
          lease_token, lease_until, last_error, replay_count, created_at, updated_at
