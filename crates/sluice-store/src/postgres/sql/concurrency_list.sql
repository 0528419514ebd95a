-- $1 now. Live reports summed per queue.
SELECT queue, SUM(concurrency_limit)::BIGINT AS total, COUNT(*) AS workers
FROM worker_concurrency
WHERE expires_at > $1
GROUP BY queue
ORDER BY queue
