-- $1 job ids: what a start decides on, locked until the transaction ends
-- (in id order, so concurrent batches do not deadlock on each other).
-- `ANY (ARRAY(SELECT unnest(...)))` rather than `ANY($n)` or a join: the
-- planner cannot see how many ids that array holds and assumes a handful,
-- so it reads them by primary key whatever the batch size and however the
-- table is laid out. Given the count, it planned a sequential scan of all
-- jobs for a batch of a few percent of the table.
SELECT id, status, attempts, lease_token, lease_until
FROM jobs
WHERE id = ANY (ARRAY(SELECT unnest($1::uuid[])))
ORDER BY id
FOR UPDATE
