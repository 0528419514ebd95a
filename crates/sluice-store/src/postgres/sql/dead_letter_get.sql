-- $1 job id
SELECT d.job_id, d.queue, j.payload::text AS payload, d.attempts, d.error, d.died_at,
       d.replay_count, j.key, j.max_attempts, j.created_at
FROM dead_letters AS d
JOIN jobs AS j ON j.id = d.job_id
WHERE d.job_id = $1
