-- The concurrency limit each worker process last reported per queue
-- (adaptive concurrency); a report lapses at expires_at.
CREATE TABLE worker_concurrency (
    queue TEXT NOT NULL,
    worker TEXT NOT NULL,
    concurrency_limit INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (queue, worker)
) WITHOUT ROWID;
