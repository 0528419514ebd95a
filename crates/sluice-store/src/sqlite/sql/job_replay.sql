-- ?1 now, ?2 job id: a fresh run (last_error kept)
UPDATE jobs
SET status = 'pending',
    replay_count = replay_count + 1,
    attempts = 0,
    lease_token = NULL,
    lease_until = NULL,
    attempt_started_at = NULL,
    updated_at = ?1
WHERE id = ?2 AND status = 'dead'
