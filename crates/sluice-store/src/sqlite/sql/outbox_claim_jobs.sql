-- ?1 JSON array of job ids
SELECT id, payload, key, traceparent
FROM jobs
WHERE id IN (SELECT value FROM json_each(?1))
