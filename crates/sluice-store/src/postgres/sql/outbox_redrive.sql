-- $1 queue, $2 job ids, $3 their updated_at as listed, $4 now.
-- Of the listed jobs (outbox_lost.sql), those that still look lost and have
-- not changed since: each goes back to pending (retrying after earlier
-- attempts) with an outbox row for the same attempt, due now. Rows locked by
-- a concurrent redrive are skipped; a job changed since this statement's
-- snapshot is re-checked by the lock and left alone.
-- Jobs are read by primary key whatever the batch size (see
-- jobs_state_lock.sql for the form of the id conditions).
WITH lost AS (
    SELECT jobs.id
    FROM jobs
    JOIN UNNEST($2::uuid[], $3::bigint[]) AS l(id, updated_at)
      ON jobs.id = l.id AND jobs.updated_at = l.updated_at
    WHERE jobs.id = ANY (ARRAY(SELECT unnest($2::uuid[])))
      AND jobs.queue = $1
      AND jobs.status IN ('pending', 'published', 'retrying')
      AND jobs.lease_token IS NULL
      AND NOT EXISTS (SELECT 1 FROM outbox AS o WHERE o.job_id = jobs.id)
    FOR UPDATE OF jobs SKIP LOCKED
), moved AS (
    UPDATE jobs
    SET status = CASE WHEN jobs.attempts = 0 THEN 'pending' ELSE 'retrying' END,
        updated_at = $4,
        due_at = $4
    WHERE jobs.id = ANY (ARRAY(SELECT id FROM lost))
    RETURNING jobs.id, jobs.queue, jobs.attempts, jobs.created_at
), added AS (
    INSERT INTO outbox (job_id, queue, attempt, available_at, created_at)
    SELECT id, queue, attempts + 1, $4, $4
    FROM moved
    RETURNING job_id
)
SELECT m.id
FROM moved AS m
JOIN added AS a ON a.job_id = m.id
ORDER BY m.created_at, m.id
