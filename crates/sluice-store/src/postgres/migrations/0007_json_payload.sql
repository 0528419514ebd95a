-- Payloads and headers are stored as `json`, the text sluice validated and
-- serialized, instead of `jsonb`. Nothing queries inside them; every job's
-- payload is written once and read back as text by the relay and the
-- worker, and `jsonb` paid a parse on every insert and a print on every
-- read (the print of a small payload cost 0.25 µs more). `json`
-- checks the text is JSON and then stores and returns it as it is, as the
-- SQLite store does. Rewrites the table once, under an exclusive lock
-- (for a large table, upgrade with the other sluice processes stopped).
ALTER TABLE jobs
    ALTER COLUMN payload TYPE json USING payload::json,
    ALTER COLUMN headers DROP DEFAULT,
    ALTER COLUMN headers TYPE json USING headers::json,
    ALTER COLUMN headers SET DEFAULT '{}';
