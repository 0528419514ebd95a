-- Operators' state: pause flags, replays with their snapshots, the audit log.

-- Pause state per queue; a queue without a row is running.
CREATE TABLE queue_state (
    queue      text    PRIMARY KEY,
    paused     boolean NOT NULL DEFAULT false,
    updated_at bigint  NOT NULL
);

-- Bulk (or single) replays of dead letters and their progress.
CREATE TABLE replays (
    id              uuid             PRIMARY KEY,
    request         jsonb            NOT NULL,     -- as given
    actor           text             NOT NULL,
    status          text             NOT NULL,     -- running, completed, failed
    matched         bigint           NOT NULL,
    replayed        bigint           NOT NULL DEFAULT 0,
    skipped         bigint           NOT NULL DEFAULT 0,
    rate_per_second double precision,              -- NULL: as fast as possible
    max_replays     bigint           NOT NULL,
    position        bigint           NOT NULL DEFAULT 0,  -- index of the next snapshot entry
    created_at      bigint           NOT NULL,
    updated_at      bigint           NOT NULL,
    finished_at     bigint
);
CREATE INDEX replays_status ON replays (status, updated_at);

-- The snapshot of job ids a replay works through, in order.
CREATE TABLE replay_ids (
    replay_id uuid   NOT NULL REFERENCES replays (id),
    idx       bigint NOT NULL,
    job_id    uuid   NOT NULL,
    PRIMARY KEY (replay_id, idx)
);

-- Operator actions.
CREATE TABLE audit_log (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     bigint NOT NULL,
    actor  text   NOT NULL,
    action text   NOT NULL,
    target text   NOT NULL,
    count  bigint NOT NULL,
    detail jsonb  NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at, id);

-- The stable listing order of dead letters.
CREATE INDEX dead_letters_order ON dead_letters (died_at, job_id);
