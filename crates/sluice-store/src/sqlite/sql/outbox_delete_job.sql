-- ?1 job id
DELETE FROM outbox WHERE job_id = ?1
