-- ?1 lease token, ?2 lease until, ?3 now, ?4 limit
UPDATE outbox
SET lease_token = ?1, lease_until = ?2
WHERE row_id IN (
    SELECT row_id
    FROM outbox
    WHERE available_at <= ?3
      AND (lease_token IS NULL OR lease_until < ?3)
    ORDER BY available_at, row_id
    LIMIT ?4
)
RETURNING row_id, job_id, queue, attempt, available_at, created_at, kind, error
