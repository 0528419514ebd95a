-- ?1 job id
DELETE FROM attempts WHERE job_id = ?1
