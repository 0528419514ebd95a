-- $1 row ids, $2 lease token.
-- Removes the rows the lease still holds; returns how many. The jobs are
-- left as they are: a job in `pending` or `retrying` without a job row in
-- the outbox reads as `published` (see job_get.sql), so publishing never
-- rewrites the job's row, which is the larger half of a relay's database
-- work per message.
WITH gone AS (
    DELETE FROM outbox
    WHERE row_id = ANY($1) AND lease_token = $2
    RETURNING 1
)
SELECT COUNT(*) AS n FROM gone
