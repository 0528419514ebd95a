-- $1 queue or NULL, $2 error substring or NULL (case-insensitive, no
-- wildcards), $3 job ids or NULL, $4 cursor died_at or NULL, $5 cursor job
-- id, $6 limit. The order (died_at, job_id) is the index's.
SELECT d.job_id, d.queue, j.payload::text AS payload, d.attempts, d.error, d.died_at,
       d.replay_count
FROM dead_letters AS d
JOIN jobs AS j ON j.id = d.job_id
WHERE ($1::text IS NULL OR d.queue = $1)
  AND ($2::text IS NULL OR strpos(lower(d.error), lower($2)) > 0)
  AND ($3::uuid[] IS NULL OR d.job_id = ANY($3))
  AND ($4::bigint IS NULL OR (d.died_at, d.job_id) > ($4, $5::uuid))
ORDER BY d.died_at, d.job_id
LIMIT $6
