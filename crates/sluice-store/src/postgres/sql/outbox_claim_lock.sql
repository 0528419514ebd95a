-- $1 now, $2 limit.
-- A held claim (held.rs): locks the due rows as outbox_claim.sql does
-- (oldest first, free or with a lapsed lease, rows locked by another claim
-- skipped) without writing them, and returns them with their jobs, fetched
-- by primary key as in outbox_claim.sql. FOR UPDATE, the lock a delete
-- takes: marking the rows deletes them in the same transaction. A row
-- whose job is gone comes back with a NULL payload, to be parked under the
-- claim's lease as outbox_claim.sql parks it (it is never published).
WITH due AS MATERIALIZED (
    SELECT row_id, job_id, queue, attempt, available_at, created_at, kind, error
    FROM outbox
    WHERE available_at <= $1
      AND (lease_token IS NULL OR lease_until < $1)
    ORDER BY available_at, row_id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
SELECT d.row_id, d.job_id, d.queue, d.attempt, d.created_at, d.kind, d.error,
       j.payload::text AS payload, j.key, j.traceparent
FROM due AS d
LEFT JOIN LATERAL (
    SELECT payload, key, traceparent FROM jobs WHERE jobs.id = d.job_id OFFSET 0
) AS j ON true
ORDER BY d.available_at, d.row_id
