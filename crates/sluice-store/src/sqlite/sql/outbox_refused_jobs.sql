-- ?1 JSON array of row ids, ?2 lease token: the job rows among them the
-- lease still holds, with their job and attempt.
SELECT row_id, job_id, attempt
FROM outbox
WHERE row_id IN (SELECT value FROM json_each(?1))
  AND lease_token = ?2
  AND kind = 'job'
