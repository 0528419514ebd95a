-- $1 position, $2 replayed to add, $3 skipped to add, $4 final status or
-- NULL, $5 now, $6 replay id
UPDATE replays
SET position = $1,
    replayed = replayed + $2,
    skipped = skipped + $3,
    status = COALESCE($4, status),
    finished_at = CASE WHEN $4::text IS NULL THEN finished_at ELSE $5 END,
    updated_at = $5
WHERE id = $6
RETURNING id, request::text AS request, status, matched, replayed, skipped, rate_per_second,
          max_replays, position, created_at, updated_at, finished_at
