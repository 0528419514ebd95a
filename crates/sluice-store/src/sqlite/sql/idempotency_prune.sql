-- ?1 before, ?2 limit: idempotency keys stored before ?1, oldest first.
DELETE FROM idempotency
WHERE (scope, key) IN (
    SELECT scope, key
    FROM idempotency
    WHERE created_at < ?1
    ORDER BY created_at
    LIMIT ?2
)
