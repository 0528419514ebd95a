-- The outbox rows some claim has stamped with a lease, by when it ends. A
-- held claim (held.rs) takes the rows whose lease lapsed through this index
-- (stamping them, which fences the old lease) and deletes the free ones:
-- finding no lapsed row then costs next to nothing, however long the
-- backlog of free rows. Rows a held claim publishes are never stamped, so
-- the index stays the size of the claims made the leased way. A stamp now
-- changes an indexed column, so it is no longer a HOT update.
CREATE INDEX outbox_leased ON outbox (lease_until) WHERE lease_token IS NOT NULL;
