-- Embedded broker schema. Statements are idempotent so that two processes
-- opening a fresh directory at once both succeed.

-- Declared topics; publishing to a topic not listed here is rejected.
CREATE TABLE IF NOT EXISTS topics (
    name       TEXT PRIMARY KEY NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Every published message. `seq` is AUTOINCREMENT so a position
-- ("<topic>/<seq>") is never reused, even after compaction.
CREATE TABLE IF NOT EXISTS messages (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    topic        TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    msg_key      TEXT,
    attributes   TEXT NOT NULL,   -- JSON object of CloudEvents attributes
    content_type TEXT,
    body         BLOB NOT NULL,
    published_at INTEGER NOT NULL -- epoch ms
);
CREATE INDEX IF NOT EXISTS messages_by_topic ON messages (topic, seq);

-- One row per consumer group of a topic. Every message of the topic with
-- seq <= cursor has been handed to the group: it is either in `deliveries`
-- (in flight or released) or acked.
CREATE TABLE IF NOT EXISTS consumer_groups (
    topic      TEXT NOT NULL,
    grp        TEXT NOT NULL,
    cursor     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (topic, grp)
) WITHOUT ROWID;

-- Un-acked deliveries of a group: leased until `visible_at` under `receipt`
-- (0 = released, nobody holds it). Acking deletes the row.
CREATE TABLE IF NOT EXISTS deliveries (
    topic          TEXT NOT NULL,
    grp            TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    visible_at     INTEGER NOT NULL, -- epoch ms
    receipt        INTEGER NOT NULL,
    delivery_count INTEGER NOT NULL,
    PRIMARY KEY (topic, grp, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_by_visibility ON deliveries (topic, grp, visible_at);
CREATE INDEX IF NOT EXISTS deliveries_by_seq ON deliveries (topic, seq);
