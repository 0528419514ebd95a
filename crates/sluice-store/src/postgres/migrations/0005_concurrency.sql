-- The concurrency limit each worker process last reported per queue
-- (adaptive concurrency); a report lapses at expires_at.
CREATE TABLE worker_concurrency (
    queue TEXT NOT NULL,
    worker TEXT NOT NULL,
    concurrency_limit BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (queue, worker)
);
