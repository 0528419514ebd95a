-- $1 queue, $2 changed before, $3 limit.
-- Jobs that look lost: published (stored `published`, or `pending` or
-- `retrying` with no outbox row left), no attempt started since (no lease),
-- no outbox row of any kind, unchanged since before $2 and due (so out on
-- the broker, for a job the relay published) since before $2. Oldest first.
SELECT id, updated_at
FROM jobs
WHERE queue = $1
  AND status IN ('pending', 'published', 'retrying')
  AND lease_token IS NULL
  AND updated_at < $2
  AND COALESCE(due_at, updated_at) < $2
  AND NOT EXISTS (SELECT 1 FROM outbox AS o WHERE o.job_id = jobs.id)
ORDER BY created_at, id
LIMIT $3
