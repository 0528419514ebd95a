-- ?1 job id
DELETE FROM dead_letters
WHERE job_id = ?1
