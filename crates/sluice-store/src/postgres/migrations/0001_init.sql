-- sluice store schema (PostgreSQL). Times are BIGINT epoch milliseconds, as in
-- the SQLite schema, so both backends share one set of semantics.

-- One row per job: the source of truth for status, attempts and the worker lease.
CREATE TABLE jobs (
    id                 uuid   PRIMARY KEY,
    queue              text   NOT NULL,
    status             text   NOT NULL
        CHECK (status IN ('pending', 'published', 'retrying', 'succeeded', 'dead')),
    payload            jsonb  NOT NULL,
    key                text,
    headers            jsonb  NOT NULL DEFAULT '{}',   -- object of strings
    traceparent        text,
    max_attempts       bigint NOT NULL,
    attempts           bigint NOT NULL DEFAULT 0,      -- attempts started so far
    lease_token        text,                           -- worker lease of the in-flight attempt
    lease_until        bigint,
    attempt_started_at bigint,
    last_error         text,
    replay_count       bigint NOT NULL DEFAULT 0,
    created_at         bigint NOT NULL,
    updated_at         bigint NOT NULL
);
CREATE INDEX jobs_queue_status ON jobs (queue, status, created_at);

-- Rows waiting to be published by a relay, each for one attempt of a job.
-- A queue table: every row is inserted, leased (updated) and deleted soon
-- after, so leave room for HOT updates and vacuum it eagerly.
CREATE TABLE outbox (
    row_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id       uuid   NOT NULL REFERENCES jobs (id),
    queue        text   NOT NULL,
    attempt      bigint NOT NULL,
    available_at bigint NOT NULL,
    lease_token  text,                                 -- relay lease
    lease_until  bigint,
    created_at   bigint NOT NULL
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02);
CREATE INDEX outbox_due ON outbox (available_at, row_id);
CREATE INDEX outbox_job ON outbox (job_id);

-- History of finished attempts.
CREATE TABLE attempts (
    job_id       uuid   NOT NULL REFERENCES jobs (id),
    replay_count bigint NOT NULL,
    attempt      bigint NOT NULL,
    started_at   bigint NOT NULL,
    finished_at  bigint NOT NULL,
    outcome      text   NOT NULL CHECK (outcome IN ('succeeded', 'retry', 'dead')),
    error        text,
    PRIMARY KEY (job_id, replay_count, attempt)
);

-- Jobs that will not be attempted again until replayed.
CREATE TABLE dead_letters (
    job_id       uuid   PRIMARY KEY REFERENCES jobs (id),
    queue        text   NOT NULL,
    died_at      bigint NOT NULL,
    error        text   NOT NULL,
    attempts     bigint NOT NULL,
    replay_count bigint NOT NULL
);
CREATE INDEX dead_letters_queue ON dead_letters (queue, died_at);

-- Idempotency keys of accepted requests and the ids they produced.
CREATE TABLE idempotency (
    scope       text   NOT NULL,
    key         text   NOT NULL,
    fingerprint text   NOT NULL,
    job_ids     jsonb  NOT NULL,                       -- array of ids
    created_at  bigint NOT NULL,
    PRIMARY KEY (scope, key)
);
