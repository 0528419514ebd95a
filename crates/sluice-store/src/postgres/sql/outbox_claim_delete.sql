-- $1 row ids.
-- Marks every row of a held claim (held.rs) published: deletes the rows it
-- locked, in its transaction, just before its commit.
DELETE FROM outbox WHERE row_id = ANY($1)
