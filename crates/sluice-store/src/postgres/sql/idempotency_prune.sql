-- $1 before, $2 limit: idempotency keys stored before $1, oldest first.
-- Keys another pruner holds are skipped. Returns how many were deleted.
WITH doomed AS MATERIALIZED (
    SELECT scope, key
    FROM idempotency
    WHERE created_at < $1
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), d AS (
    DELETE FROM idempotency AS i
    USING doomed
    WHERE i.scope = doomed.scope AND i.key = doomed.key
    RETURNING 1
)
SELECT COUNT(*) AS n FROM d
