-- ?1 reason, ?2 now, ?3 job id, ?4 the refused row's attempt.
-- Dead-letters a job whose publication the broker refused for good, unless
-- a worker has started this attempt (or a later one) or holds the job.
UPDATE jobs
SET status = 'dead',
    last_error = ?1,
    lease_token = NULL,
    lease_until = NULL,
    updated_at = ?2
WHERE id = ?3
  AND status IN ('pending', 'published', 'retrying')
  AND attempts = ?4 - 1
  AND (lease_token IS NULL OR lease_until IS NULL OR lease_until < ?2)
RETURNING queue, attempts, replay_count
