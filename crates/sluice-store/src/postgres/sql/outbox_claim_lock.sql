-- $1 lease token, $2 lease until, $3 now, $4 limit.
-- The first part of a held claim (held.rs), before its savepoint: locks the
-- due rows as outbox_claim.sql does (oldest first, rows locked by another
-- claim skipped), stamps those whose lease lapsed with the new lease, which
-- fences their old holder, and returns every locked row with its job
-- (`lapsed`: stamped). The free rows are deleted after the savepoint
-- (outbox_claim_delete.sql); the locks, taken before it, hold until the
-- claim ends whatever is rolled back to it. Jobs are fetched by primary
-- key, as in outbox_claim.sql.
WITH due AS MATERIALIZED (
    SELECT row_id, job_id, queue, attempt, available_at, created_at, kind, error,
           lease_token IS NOT NULL AS lapsed
    FROM outbox
    WHERE available_at <= $3
      AND (lease_token IS NULL OR lease_until < $3)
    ORDER BY available_at, row_id
    LIMIT $4
    FOR UPDATE SKIP LOCKED
), stamped AS (
    UPDATE outbox AS o
    SET lease_token = $1, lease_until = $2
    WHERE o.row_id = ANY (ARRAY(SELECT row_id FROM due WHERE lapsed))
)
SELECT d.row_id, d.job_id, d.queue, d.attempt, d.created_at, d.kind, d.error, d.lapsed,
       j.payload::text AS payload, j.key, j.traceparent
FROM due AS d
CROSS JOIN LATERAL (
    SELECT payload, key, traceparent FROM jobs WHERE jobs.id = d.job_id OFFSET 0
) AS j
ORDER BY d.available_at, d.row_id
