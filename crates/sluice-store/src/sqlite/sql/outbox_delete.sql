-- ?1 JSON array of row ids, ?2 lease token
DELETE FROM outbox
WHERE row_id IN (SELECT value FROM json_each(?1))
  AND lease_token = ?2
