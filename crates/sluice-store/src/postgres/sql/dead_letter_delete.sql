-- $1 job id: the dead letter and its job for good, with the job's outbox
-- rows and history. Returns the number of jobs deleted (0: not dead).
WITH d AS (
    DELETE FROM dead_letters WHERE job_id = $1 RETURNING job_id
), o AS (
    DELETE FROM outbox WHERE job_id IN (SELECT job_id FROM d)
), a AS (
    DELETE FROM attempts WHERE job_id IN (SELECT job_id FROM d)
), j AS (
    DELETE FROM jobs WHERE id IN (SELECT job_id FROM d) RETURNING id
)
SELECT COUNT(*) AS n FROM j
