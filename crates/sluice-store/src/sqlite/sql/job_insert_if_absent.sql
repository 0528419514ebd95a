INSERT INTO jobs (id, queue, status, payload, key, headers, traceparent,
                  max_attempts, attempts, replay_count, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, 0, ?9, ?9)
ON CONFLICT (id) DO NOTHING
