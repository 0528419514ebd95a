-- $1 now, then per row: $2 job ids, $3 queues, $4 attempts that died,
-- $5 errors: dead letters' publications to their queues' dead-letter
-- topics, due at once.
INSERT INTO outbox (job_id, queue, attempt, available_at, created_at, kind, error)
SELECT u.job_id, u.queue, u.attempt, $1, $1, 'dead_letter', u.error
FROM UNNEST($2::uuid[], $3::text[], $4::bigint[], $5::text[]) WITH ORDINALITY
    AS u(job_id, queue, attempt, error, ord)
ORDER BY u.ord
