-- $1 lease token, $2 lease until, $3 row ids.
-- A held claim turned into a leased one (held.rs): stamps the rows it has
-- locked with the claim's token and lease, as outbox_claim.sql would have;
-- lapsed leases are replaced, which fences their old holder.
UPDATE outbox
SET lease_token = $1, lease_until = $2
WHERE row_id = ANY($3)
