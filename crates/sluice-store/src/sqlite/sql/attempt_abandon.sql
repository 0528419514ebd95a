-- ?1 job id, ?2 lease token, ?3 attempt, ?4 now, ?5 whether the start took over
-- Undoes a start whose handler never ran, while its lease holds the job,
-- leaving the job as the start found it: with no lease after a finished
-- attempt, or, when the start took over a lapsed lease, held by a lapsed
-- lease again, so that the message of the attempt taken over takes it
-- over again when it is delivered again.
UPDATE jobs
SET attempts = attempts - 1,
    lease_token = CASE WHEN ?5 THEN lease_token END,
    lease_until = CASE WHEN ?5 THEN ?4 - 1 END,
    attempt_started_at = NULL,
    updated_at = ?4
WHERE id = ?1 AND lease_token = ?2 AND attempts = ?3
