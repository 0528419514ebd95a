-- $1 job ids: those that are dead letters, locked (in id order).
SELECT d.job_id, j.queue, j.status, j.replay_count
FROM dead_letters AS d
JOIN jobs AS j ON j.id = d.job_id
WHERE d.job_id = ANY($1)
ORDER BY d.job_id
FOR UPDATE
