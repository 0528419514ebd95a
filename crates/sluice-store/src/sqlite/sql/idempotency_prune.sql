-- ?1 before, ?2 limit: idempotency keys stored before ?1, oldest first,
-- but for the key of a replay still running (its first id names the
-- replay), which must keep answering a repeated request however long the
-- replay takes.
DELETE FROM idempotency
WHERE (scope, key) IN (
    SELECT i.scope, i.key
    FROM idempotency AS i
    WHERE i.created_at < ?1
      AND NOT EXISTS (
          SELECT 1 FROM replays AS r
          WHERE r.status = 'running' AND r.id = json_extract(i.job_ids, '$[0]')
      )
    ORDER BY i.created_at
    LIMIT ?2
)
