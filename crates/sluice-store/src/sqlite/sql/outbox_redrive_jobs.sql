-- ?1 queue, ?2 published before, ?3 limit, ?4 now.
-- Jobs a broker lost: published, no attempt started since (no lease), marked
-- published before ?2, no outbox row. Each goes back to pending (retrying
-- after earlier attempts); the caller adds their outbox rows in the same
-- transaction.
UPDATE jobs
SET status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'retrying' END,
    updated_at = ?4
WHERE id IN (
    SELECT j.id
    FROM jobs AS j
    WHERE j.queue = ?1
      AND j.status = 'published'
      AND j.lease_token IS NULL
      AND j.updated_at < ?2
      AND NOT EXISTS (SELECT 1 FROM outbox AS o WHERE o.job_id = j.id)
    ORDER BY j.created_at, j.id
    LIMIT ?3
)
RETURNING id, queue, attempts, created_at
