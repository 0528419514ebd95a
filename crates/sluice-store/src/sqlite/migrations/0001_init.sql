-- sluice store schema (SQLite). Times are INTEGER epoch milliseconds.

-- One row per job: the source of truth for status, attempts and the worker lease.
CREATE TABLE jobs (
    id                 TEXT    PRIMARY KEY NOT NULL,
    queue              TEXT    NOT NULL,
    status             TEXT    NOT NULL
        CHECK (status IN ('pending', 'published', 'retrying', 'succeeded', 'dead')),
    payload            TEXT    NOT NULL,             -- JSON
    key                TEXT,
    headers            TEXT    NOT NULL DEFAULT '{}', -- JSON object of strings
    traceparent        TEXT,
    max_attempts       INTEGER NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,   -- attempts started so far
    lease_token        TEXT,                         -- worker lease of the in-flight attempt
    lease_until        INTEGER,
    attempt_started_at INTEGER,
    last_error         TEXT,
    replay_count       INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX jobs_queue_status ON jobs (queue, status, created_at);

-- Rows waiting to be published by a relay, each for one attempt of a job.
CREATE TABLE outbox (
    row_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id       TEXT    NOT NULL REFERENCES jobs (id),
    queue        TEXT    NOT NULL,
    attempt      INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    lease_token  TEXT,                               -- relay lease
    lease_until  INTEGER,
    created_at   INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox (available_at, row_id);
CREATE INDEX outbox_job ON outbox (job_id);

-- History of finished attempts.
CREATE TABLE attempts (
    job_id       TEXT    NOT NULL REFERENCES jobs (id),
    replay_count INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    outcome      TEXT    NOT NULL CHECK (outcome IN ('succeeded', 'retry', 'dead')),
    error        TEXT,
    PRIMARY KEY (job_id, replay_count, attempt)
) WITHOUT ROWID;

-- Jobs that will not be attempted again until replayed.
CREATE TABLE dead_letters (
    job_id       TEXT    PRIMARY KEY NOT NULL REFERENCES jobs (id),
    queue        TEXT    NOT NULL,
    died_at      INTEGER NOT NULL,
    error        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    replay_count INTEGER NOT NULL
);
CREATE INDEX dead_letters_queue ON dead_letters (queue, died_at);

-- Idempotency keys of accepted requests and the job ids they produced.
CREATE TABLE idempotency (
    scope       TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    job_ids     TEXT    NOT NULL,                    -- JSON array of job ids
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
