-- ?1 status, ?2 error (NULL keeps last_error), ?3 now, ?4 job id, ?5 lease token, ?6 attempt
UPDATE jobs
SET status = ?1,
    last_error = COALESCE(?2, last_error),
    lease_token = NULL,
    lease_until = NULL,
    updated_at = ?3
WHERE id = ?4 AND lease_token = ?5 AND attempts = ?6
RETURNING queue, attempts, replay_count
