-- $1 job id: every finished attempt of every run
SELECT replay_count, attempt, started_at, finished_at, outcome, error
FROM attempts
WHERE job_id = $1
ORDER BY replay_count, attempt
