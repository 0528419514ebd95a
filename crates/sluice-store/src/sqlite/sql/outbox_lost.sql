-- ?1 queue, ?2 changed before, ?3 limit.
-- Jobs that look lost: published, no attempt started since (no lease), no
-- outbox row, unchanged since before ?2 (marked published before it).
-- Oldest first.
SELECT j.id, j.updated_at
FROM jobs AS j
WHERE j.queue = ?1
  AND j.status = 'published'
  AND j.lease_token IS NULL
  AND j.updated_at < ?2
  AND NOT EXISTS (SELECT 1 FROM outbox AS o WHERE o.job_id = j.id)
ORDER BY j.created_at, j.id
LIMIT ?3
