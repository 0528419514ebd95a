-- $1 updated before this time
SELECT id, request::text AS request, status, matched, replayed, skipped, rate_per_second,
       max_replays, position, created_at, updated_at, finished_at
FROM replays
WHERE status = 'running' AND updated_at < $1
ORDER BY updated_at, id
