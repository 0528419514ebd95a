-- $1 queue or NULL, $2 error substring or NULL, $3 job ids or NULL
SELECT COUNT(*) AS n
FROM dead_letters AS d
WHERE ($1::text IS NULL OR d.queue = $1)
  AND ($2::text IS NULL OR strpos(lower(d.error), lower($2)) > 0)
  AND ($3::uuid[] IS NULL OR d.job_id = ANY($3))
