-- ?1 now, ?2 JSON array of row ids, ?3 lease token.
-- Only jobs whose attempt of the row no worker has started yet, and only
-- for job rows: publishing a dead letter never changes its job.
UPDATE jobs
SET status = 'published', updated_at = ?1
FROM (
    SELECT job_id, attempt
    FROM outbox
    WHERE row_id IN (SELECT value FROM json_each(?2))
      AND lease_token = ?3
      AND kind = 'job'
) AS o
WHERE jobs.id = o.job_id
  AND jobs.status IN ('pending', 'retrying')
  AND jobs.attempts = o.attempt - 1
