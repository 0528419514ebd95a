-- $1 job ids: what a start decides on, locked until the transaction ends
-- (in id order, so concurrent batches do not deadlock on each other).
SELECT id, status, attempts, lease_token, lease_until
FROM jobs
WHERE id = ANY($1)
ORDER BY id
FOR UPDATE
