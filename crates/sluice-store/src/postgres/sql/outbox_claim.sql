-- $1 lease token, $2 lease until, $3 now, $4 limit.
-- No high-water mark: any committed, due, unleased row is a candidate, so a
-- row whose transaction committed after a later row's is still published.
-- Rows locked by a concurrent claim are skipped, never waited for.
WITH due AS MATERIALIZED (
    SELECT row_id
    FROM outbox
    WHERE available_at <= $3
      AND (lease_token IS NULL OR lease_until < $3)
    ORDER BY available_at, row_id
    LIMIT $4
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE outbox AS o
    SET lease_token = $1, lease_until = $2
    FROM due
    WHERE o.row_id = due.row_id
    RETURNING o.row_id, o.job_id, o.queue, o.attempt, o.available_at, o.created_at,
              o.kind, o.error
)
SELECT c.row_id, c.job_id, c.queue, c.attempt, c.created_at, c.kind, c.error,
       j.payload::text AS payload, j.key, j.traceparent
FROM claimed AS c
JOIN jobs AS j ON j.id = c.job_id
ORDER BY c.available_at, c.row_id
