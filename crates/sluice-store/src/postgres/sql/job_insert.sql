-- Jobs and their first outbox rows, in one statement.
-- $1 ids, $2 queues, $3 payloads (JSON), $4 keys, $5 headers (JSON),
-- $6 traceparents, $7 max attempts, $8 available at, $9 now.
-- Returns the number of outbox rows inserted, and wakes every relay
-- LISTENing once the transaction commits (PostgreSQL folds the same
-- notification sent twice in one transaction into one). One statement, so
-- a batch without idempotency keys is one round trip in autocommit.
-- Nothing reads `j`, yet it runs to completion (PostgreSQL runs every
-- data-modifying WITH exactly once), and it inserts every job or fails the
-- statement: each outbox row names a job inserted with it.
WITH u AS (
    SELECT *
    FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::bigint[], $8::bigint[])
        WITH ORDINALITY AS u(id, queue, payload, key, headers, traceparent, max_attempts,
                             available_at, ord)
), j AS (
    INSERT INTO jobs (id, queue, status, payload, key, headers, traceparent,
                      max_attempts, attempts, replay_count, created_at, updated_at, due_at)
    SELECT id, queue, 'pending', payload::json, key, headers::json, traceparent,
           max_attempts, 0, 0, $9, $9, GREATEST(available_at, $9)
    FROM u
), o AS (
    INSERT INTO outbox (job_id, queue, attempt, available_at, created_at)
    SELECT u.id, u.queue, 1, u.available_at, $9
    FROM u
    ORDER BY u.ord
    RETURNING 1
)
SELECT c.n
FROM (SELECT COUNT(*) AS n FROM o) c
CROSS JOIN LATERAL (SELECT pg_notify('sluice_outbox', '')) p
