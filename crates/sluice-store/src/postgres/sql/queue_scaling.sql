-- $1 now, $2 queue names. Autoscaling figures per queue: unfinished jobs by
-- state (an attempt is in flight while its lease holds; a job stored as
-- `pending` or `retrying` whose job row has left the outbox was published,
-- as in job_get.sql), dead jobs, and the due outbox rows (job rows are
-- backlog; any due row is relay lag). The parts use the partial index of
-- unfinished jobs, the dead letters (one per dead job, never pruned: reading
-- their narrow rows instead of the dead jobs' keeps this query off a scan of
-- the jobs table once dead jobs are many) and (available_at); succeeded jobs
-- are never read. The outbox's job rows of
-- these queues (an outbox row carries its job's queue) are joined once, not
-- probed per job. A relay-published job has waited since it was due
-- (due_at; updated_at for jobs older than that column), as the relay does
-- not rewrite the job.
SELECT queue,
       SUM(pending) AS pending,
       SUM(published) AS published,
       SUM(in_flight) AS in_flight,
       SUM(retrying) AS retrying,
       SUM(dead) AS dead,
       MIN(published_since) AS published_since,
       SUM(due_jobs) AS due_jobs,
       MIN(due_job_at) AS oldest_due_job,
       MIN(due_at) AS oldest_due
FROM (
    SELECT queue,
           (status = 'pending')::int AS pending,
           (status = 'published' AND COALESCE(lease_until < $1, true))::int AS published,
           (status = 'published' AND COALESCE(lease_until >= $1, false))::int AS in_flight,
           (status = 'retrying')::int AS retrying,
           0 AS dead,
           CASE WHEN status = 'published' AND COALESCE(lease_until < $1, true)
                THEN COALESCE(lease_until, due_at, updated_at) END AS published_since,
           0 AS due_jobs,
           NULL::bigint AS due_job_at,
           NULL::bigint AS due_at
    FROM (
        SELECT j.queue, j.lease_until, j.updated_at, j.due_at,
               CASE WHEN j.status IN ('pending', 'retrying') AND o.job_id IS NULL
                    THEN 'published' ELSE j.status END AS status
        FROM jobs AS j
        LEFT JOIN (SELECT DISTINCT job_id FROM outbox
                   WHERE kind = 'job' AND queue = ANY($2)) AS o ON o.job_id = j.id
        WHERE j.queue = ANY($2) AND j.status IN ('pending', 'published', 'retrying')
    ) AS j
    UNION ALL
    SELECT queue, 0, 0, 0, 0, COUNT(*)::int, NULL, 0, NULL, NULL
    FROM dead_letters
    WHERE queue = ANY($2)
    GROUP BY queue
    UNION ALL
    SELECT queue, 0, 0, 0, 0, 0, NULL,
           (kind = 'job')::int,
           CASE WHEN kind = 'job' THEN available_at END,
           available_at
    FROM outbox
    WHERE available_at <= $1 AND queue = ANY($2)
) AS figures
GROUP BY queue
