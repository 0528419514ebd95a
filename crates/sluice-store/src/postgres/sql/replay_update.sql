-- $1 position, $2 final status or NULL, $3 now, $4 replay id. The position
-- never moves back.
UPDATE replays
SET position = GREATEST(position, $1),
    status = COALESCE($2, status),
    finished_at = CASE WHEN $2::text IS NULL THEN finished_at ELSE $3 END,
    updated_at = $3
WHERE id = $4
RETURNING id, request::text AS request, status, matched, replayed, skipped, rate_per_second,
          max_replays, position, created_at, updated_at, finished_at
