-- $1 job id. A job stored as `pending` or `retrying` whose job row has left
-- the outbox was published by a relay: it reads as `published`.
SELECT j.id, j.queue,
       CASE WHEN j.status IN ('pending', 'retrying')
                 AND NOT EXISTS (SELECT 1 FROM outbox AS o
                                 WHERE o.job_id = j.id AND o.kind = 'job')
            THEN 'published' ELSE j.status END AS status,
       j.payload::text AS payload, j.key, j.headers::text AS headers,
       j.traceparent, j.max_attempts, j.attempts, j.last_error,
       j.replay_count, j.created_at, j.updated_at
FROM jobs AS j
WHERE j.id = $1
