-- $1 now, $2 limit.
-- The second part of a held claim (held.rs), after its savepoint: due rows
-- no lease ever held or that were released, oldest first, deleted in the
-- claim's open transaction and returned with their jobs. Committing marks
-- them all published; until then other claims skip them (locked) and every
-- other reader still sees them. Jobs are fetched by primary key, as
-- in outbox_claim.sql. A row whose job is gone (none is: a statement that
-- deletes a job deletes its outbox rows) would be deleted unreturned.
-- `due` reads as outbox_claim.sql reads, lapsed rows included, and only
-- the free rows it locked are deleted: a lapsed row (one that lapsed since
-- the first part) stays, locked until the claim ends. Without statistics
-- (a new table) PostgreSQL takes `lease_token IS NULL` alone to match 0.5%
-- of rows, and read and sorted the whole backlog for every claim instead
-- of the first rows of outbox_due.
WITH due AS MATERIALIZED (
    SELECT row_id
    FROM outbox
    WHERE available_at <= $1
      AND (lease_token IS NULL OR lease_until < $1)
    ORDER BY available_at, row_id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM outbox AS o
    WHERE o.row_id = ANY (ARRAY(SELECT row_id FROM due)) AND o.lease_token IS NULL
    RETURNING o.row_id, o.job_id, o.queue, o.attempt, o.available_at, o.created_at,
              o.kind, o.error
)
SELECT c.row_id, c.job_id, c.queue, c.attempt, c.created_at, c.kind, c.error,
       j.payload::text AS payload, j.key, j.traceparent
FROM gone AS c
CROSS JOIN LATERAL (
    SELECT payload, key, traceparent FROM jobs WHERE jobs.id = c.job_id OFFSET 0
) AS j
ORDER BY c.available_at, c.row_id
