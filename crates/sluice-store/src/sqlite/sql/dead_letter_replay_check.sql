-- ?1 job id
SELECT j.queue, j.status, j.replay_count
FROM dead_letters AS d
JOIN jobs AS j ON j.id = d.job_id
WHERE d.job_id = ?1
