-- ?1 JSON array of job ids: their attempt history.
DELETE FROM attempts WHERE job_id IN (SELECT value FROM json_each(?1))
