-- ?1 queue or NULL, ?2 error substring or NULL, ?3 JSON array of job ids or NULL
SELECT COUNT(*) AS n
FROM dead_letters AS d
WHERE (?1 IS NULL OR d.queue = ?1)
  AND (?2 IS NULL OR instr(lower(d.error), lower(?2)) > 0)
  AND (?3 IS NULL OR d.job_id IN (SELECT value FROM json_each(?3)))
