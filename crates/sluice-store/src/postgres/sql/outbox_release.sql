-- $1 available at, $2 row ids, $3 lease token
UPDATE outbox
SET lease_token = NULL, lease_until = NULL, available_at = $1
WHERE row_id = ANY($2) AND lease_token = $3
