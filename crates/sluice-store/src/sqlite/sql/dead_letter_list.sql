-- ?1 queue or NULL, ?2 error substring or NULL (case-insensitive, no
-- wildcards), ?3 JSON array of job ids or NULL, ?4 cursor died_at or NULL,
-- ?5 cursor job id, ?6 limit
SELECT d.job_id, d.queue, j.payload, d.attempts, d.error, d.died_at, d.replay_count
FROM dead_letters AS d
JOIN jobs AS j ON j.id = d.job_id
WHERE (?1 IS NULL OR d.queue = ?1)
  AND (?2 IS NULL OR instr(lower(d.error), lower(?2)) > 0)
  AND (?3 IS NULL OR d.job_id IN (SELECT value FROM json_each(?3)))
  AND (?4 IS NULL OR d.died_at > ?4 OR (d.died_at = ?4 AND d.job_id > ?5))
ORDER BY d.died_at, d.job_id
LIMIT ?6
