-- ?1 lease until, ?2 JSON array of row ids, ?3 lease token.
-- Extends the lease of the rows the token still holds (even lapsed: no
-- other claim took them); returns them.
UPDATE outbox
SET lease_until = ?1
WHERE row_id IN (SELECT value FROM json_each(?2))
  AND lease_token = ?3
RETURNING row_id
