-- Each entry of a replay's snapshot is taken in the transaction that
-- replays it, so a replay resumed from an older recorded position, or run
-- twice at once, replays no job twice. Adds a column with a constant
-- default: no rewrite of the table.
ALTER TABLE replay_ids ADD COLUMN taken boolean NOT NULL DEFAULT false;
