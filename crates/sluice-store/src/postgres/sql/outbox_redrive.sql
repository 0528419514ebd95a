-- $1 queue, $2 published before, $3 limit, $4 now.
-- Jobs a broker lost: published, no attempt started since (no lease), marked
-- published before $2, no outbox row. Each goes back to pending (retrying
-- after earlier attempts) with an outbox row for the same attempt, due now.
-- Rows locked by a concurrent redrive are skipped; a job changed since this
-- statement's snapshot is re-checked by the lock and left alone.
WITH lost AS (
    SELECT id
    FROM jobs
    WHERE queue = $1
      AND status = 'published'
      AND lease_token IS NULL
      AND updated_at < $2
      AND NOT EXISTS (SELECT 1 FROM outbox AS o WHERE o.job_id = jobs.id)
    ORDER BY created_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE jobs
    SET status = CASE WHEN jobs.attempts = 0 THEN 'pending' ELSE 'retrying' END,
        updated_at = $4
    FROM lost
    WHERE jobs.id = lost.id
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
