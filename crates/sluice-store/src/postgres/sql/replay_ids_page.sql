-- $1 replay id, $2 position, $3 limit
SELECT job_id
FROM replay_ids
WHERE replay_id = $1 AND idx >= $2
ORDER BY idx
LIMIT $3
