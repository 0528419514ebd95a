-- $1 lease token, $2 lease until, $3 now, $4 limit.
-- The first part of a held claim (held.rs), before its savepoint: due rows
-- whose lease lapsed (their relay died, hung or was slow), oldest lease
-- first, stamped with the new lease as outbox_claim.sql stamps them, which
-- fences the old one. Read through outbox_leased: none costs next to
-- nothing. Jobs are fetched by primary key, as in outbox_claim.sql.
WITH due AS MATERIALIZED (
    SELECT row_id
    FROM outbox
    WHERE lease_token IS NOT NULL AND lease_until < $3 AND available_at <= $3
    ORDER BY lease_until
    LIMIT $4
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE outbox AS o
    SET lease_token = $1, lease_until = $2
    WHERE o.row_id = ANY (ARRAY(SELECT row_id FROM due))
    RETURNING o.row_id, o.job_id, o.queue, o.attempt, o.available_at, o.created_at,
              o.kind, o.error
)
SELECT c.row_id, c.job_id, c.queue, c.attempt, c.created_at, c.kind, c.error,
       j.payload::text AS payload, j.key, j.traceparent
FROM claimed AS c
CROSS JOIN LATERAL (
    SELECT payload, key, traceparent FROM jobs WHERE jobs.id = c.job_id OFFSET 0
) AS j
ORDER BY c.available_at, c.row_id
