-- ?1 queue, ?2 JSON array of [job id, updated_at as listed], ?3 now.
-- Of the listed jobs (outbox_lost.sql), those that still look lost and have
-- not changed since. Each goes back to pending (retrying after earlier
-- attempts); the caller adds their outbox rows in the same transaction.
UPDATE jobs
SET status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'retrying' END,
    updated_at = ?3
WHERE id IN (
    SELECT j.id
    FROM jobs AS j
    JOIN json_each(?2) AS l
      ON j.id = json_extract(l.value, '$[0]')
     AND j.updated_at = json_extract(l.value, '$[1]')
    WHERE j.queue = ?1
      AND j.status = 'published'
      AND j.lease_token IS NULL
      AND NOT EXISTS (SELECT 1 FROM outbox AS o WHERE o.job_id = j.id)
)
RETURNING id, queue, attempts, created_at
