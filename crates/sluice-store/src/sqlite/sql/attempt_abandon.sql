-- ?1 job id, ?2 lease token, ?3 attempt, ?4 now
-- Undoes a start whose handler never ran, while its lease holds the job.
UPDATE jobs
SET attempts = attempts - 1,
    lease_token = NULL,
    lease_until = NULL,
    attempt_started_at = NULL,
    updated_at = ?4
WHERE id = ?1 AND lease_token = ?2 AND attempts = ?3
