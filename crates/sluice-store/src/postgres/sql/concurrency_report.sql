-- $1 queue, $2 worker, $3 limit, $4 expires at. A worker's report replaces its last.
INSERT INTO worker_concurrency (queue, worker, concurrency_limit, expires_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (queue, worker) DO UPDATE
SET concurrency_limit = excluded.concurrency_limit, expires_at = excluded.expires_at
