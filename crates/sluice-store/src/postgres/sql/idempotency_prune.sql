-- $1 before, $2 limit: idempotency keys stored before $1, oldest first.
-- Keys another pruner holds are skipped, and so is the key of a replay
-- still running (its first id names the replay), which must keep answering
-- a repeated request however long the replay takes. Returns how many were
-- deleted.
WITH doomed AS MATERIALIZED (
    SELECT i.scope, i.key
    FROM idempotency AS i
    WHERE i.created_at < $1
      AND NOT EXISTS (
          SELECT 1 FROM replays AS r
          WHERE r.status = 'running' AND r.id::text = i.job_ids->>0
      )
    ORDER BY i.created_at
    LIMIT $2
    FOR UPDATE OF i SKIP LOCKED
), d AS (
    DELETE FROM idempotency AS i
    USING doomed
    WHERE i.scope = doomed.scope AND i.key = doomed.key
    RETURNING 1
)
SELECT COUNT(*) AS n FROM d
