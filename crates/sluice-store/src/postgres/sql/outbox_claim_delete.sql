-- $1 row ids.
-- The second part of a held claim (held.rs), after its savepoint: deletes
-- the free rows it locked. Committing marks them published; until then
-- every other reader still sees them.
DELETE FROM outbox WHERE row_id = ANY($1)
