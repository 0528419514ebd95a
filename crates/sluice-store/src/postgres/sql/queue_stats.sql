SELECT queue, status, COUNT(*) AS n, MIN(created_at) AS oldest
FROM jobs
GROUP BY queue, status
ORDER BY queue
