-- $1 row ids, $2 lease token, $3 now.
-- Removes the rows the lease still holds and moves the jobs of job rows to
-- 'published', but only jobs whose attempt of the row no worker has started
-- (publishing a dead letter never changes its job).
-- Returns the number of rows removed.
WITH gone AS (
    DELETE FROM outbox
    WHERE row_id = ANY($1) AND lease_token = $2
    RETURNING job_id, attempt, kind
), marked AS (
    UPDATE jobs
    SET status = 'published', updated_at = $3
    FROM gone
    WHERE jobs.id = gone.job_id
      AND gone.kind = 'job'
      AND jobs.status IN ('pending', 'retrying')
      AND jobs.attempts = gone.attempt - 1
    RETURNING 1
)
SELECT COUNT(*) AS n FROM gone
