-- ?1 available at, ?2 JSON array of row ids, ?3 lease token
UPDATE outbox
SET lease_token = NULL, lease_until = NULL, available_at = ?1
WHERE row_id IN (SELECT value FROM json_each(?2))
  AND lease_token = ?3
