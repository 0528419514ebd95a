-- $1 now, then per row: $2 job ids, $3 queues, $4 attempts, $5 available at
INSERT INTO outbox (job_id, queue, attempt, available_at, created_at)
SELECT u.job_id, u.queue, u.attempt, u.available_at, $1
FROM UNNEST($2::uuid[], $3::text[], $4::bigint[], $5::bigint[]) WITH ORDINALITY
    AS u(job_id, queue, attempt, available_at, ord)
ORDER BY u.ord
