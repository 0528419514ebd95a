-- $1 id, $2 request JSON, $3 actor, $4 matched, $5 rate, $6 max replays, $7 now
INSERT INTO replays (id, request, actor, status, matched, replayed, skipped,
                     rate_per_second, max_replays, position, created_at, updated_at)
VALUES ($1, $2::jsonb, $3, 'running', $4, 0, 0, $5, $6, 0, $7, $7)
RETURNING id, request::text AS request, status, matched, replayed, skipped, rate_per_second,
          max_replays, position, created_at, updated_at, finished_at
