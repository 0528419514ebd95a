-- Jobs per queue and status (a relay-published job reads as `published`,
-- as in job_get.sql), with the oldest creation time of each.
SELECT queue, status, COUNT(*) AS n, MIN(created_at) AS oldest
FROM (
    SELECT j.queue, j.created_at,
           CASE WHEN j.status IN ('pending', 'retrying')
                     AND NOT EXISTS (SELECT 1 FROM outbox AS o
                                     WHERE o.job_id = j.id AND o.kind = 'job')
                THEN 'published' ELSE j.status END AS status
    FROM jobs AS j
) AS s
GROUP BY queue, status
ORDER BY queue
