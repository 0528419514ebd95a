-- Each entry of a replay's snapshot is taken in the transaction that
-- replays it, so a replay resumed from an older recorded position replays
-- no job twice.
ALTER TABLE replay_ids ADD COLUMN taken INTEGER NOT NULL DEFAULT 0;
