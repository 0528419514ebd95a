-- ?1 now. Live reports summed per queue.
SELECT queue, SUM(concurrency_limit) AS total, COUNT(*) AS workers
FROM worker_concurrency
WHERE expires_at > ?1
GROUP BY queue
ORDER BY queue
