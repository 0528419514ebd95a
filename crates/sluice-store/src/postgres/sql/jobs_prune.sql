-- $1 before, $2 limit: succeeded jobs last changed before $1, oldest first,
-- deleted with their history and any outbox row still naming them (a
-- redrive's copy, published or not, is of no use once the job succeeded).
-- Rows another pruner holds are skipped. Returns the number of jobs deleted.
WITH doomed AS MATERIALIZED (
    SELECT id
    FROM jobs
    WHERE status = 'succeeded' AND updated_at < $1
    ORDER BY updated_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), o AS (
    DELETE FROM outbox WHERE job_id IN (SELECT id FROM doomed)
), a AS (
    DELETE FROM attempts WHERE job_id IN (SELECT id FROM doomed)
), j AS (
    DELETE FROM jobs WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT COUNT(*) AS n FROM j
