-- ?1 JSON array of job ids: their outbox rows.
DELETE FROM outbox WHERE job_id IN (SELECT value FROM json_each(?1))
