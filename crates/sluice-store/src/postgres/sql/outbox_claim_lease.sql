-- $1 lease token, $2 lease until, $3 row ids.
-- A held claim turned into a leased one (held.rs), once ROLLBACK TO
-- SAVEPOINT has undone the deletion of its free rows (still locked by it):
-- stamps them with the claim's token and lease as outbox_claim.sql would
-- have.
UPDATE outbox
SET lease_token = $1, lease_until = $2
WHERE row_id = ANY($3) AND lease_token IS NULL
