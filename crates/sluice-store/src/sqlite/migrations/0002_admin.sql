-- Operators' state: pause flags, replays with their snapshots, the audit log.

-- Pause state per queue; a queue without a row is running.
CREATE TABLE queue_state (
    queue      TEXT    PRIMARY KEY NOT NULL,
    paused     INTEGER NOT NULL DEFAULT 0,       -- 0 or 1
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Bulk (or single) replays of dead letters and their progress.
CREATE TABLE replays (
    id              TEXT    PRIMARY KEY NOT NULL,
    request         TEXT    NOT NULL,            -- JSON, as given
    actor           TEXT    NOT NULL,
    status          TEXT    NOT NULL,            -- running, completed, failed
    matched         INTEGER NOT NULL,
    replayed        INTEGER NOT NULL DEFAULT 0,
    skipped         INTEGER NOT NULL DEFAULT 0,
    rate_per_second REAL,                        -- NULL: as fast as possible
    max_replays     INTEGER NOT NULL,
    position        INTEGER NOT NULL DEFAULT 0,  -- index of the next snapshot entry
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX replays_status ON replays (status, updated_at);

-- The snapshot of job ids a replay works through, in order.
CREATE TABLE replay_ids (
    replay_id TEXT    NOT NULL REFERENCES replays (id),
    idx       INTEGER NOT NULL,
    job_id    TEXT    NOT NULL,
    PRIMARY KEY (replay_id, idx)
) WITHOUT ROWID;

-- Operator actions.
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    count  INTEGER NOT NULL,
    detail TEXT    NOT NULL                      -- JSON
);
CREATE INDEX audit_log_at ON audit_log (at, id);

-- The stable listing order of dead letters.
CREATE INDEX dead_letters_order ON dead_letters (died_at, job_id);
