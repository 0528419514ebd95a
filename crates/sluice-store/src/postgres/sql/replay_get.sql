-- $1 replay id
SELECT id, request::text AS request, status, matched, replayed, skipped, rate_per_second,
       max_replays, position, created_at, updated_at, finished_at
FROM replays
WHERE id = $1
