-- Jobs of direct producers (no outbox row), status 'published'; an existing
-- id is left alone. $1 ids, $2 queues, $3 payloads (JSON), $4 keys,
-- $5 headers (JSON), $6 traceparents, $7 max attempts, $8 now.
-- Returns the ids inserted.
INSERT INTO jobs (id, queue, status, payload, key, headers, traceparent,
                  max_attempts, attempts, replay_count, created_at, updated_at)
SELECT id, queue, 'published', payload::json, key, headers::json, traceparent,
       max_attempts, 0, 0, $8, $8
FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::bigint[])
    AS u(id, queue, payload, key, headers, traceparent, max_attempts)
ORDER BY id
ON CONFLICT (id) DO NOTHING
RETURNING id
