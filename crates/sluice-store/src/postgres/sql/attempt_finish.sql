-- $1 now, then one element per completion (each job at most once):
-- $2 index, $3 job id, $4 lease token, $5 attempt, $6 status,
-- $7 error (NULL keeps last_error), $8 when a retry is due (NULL otherwise;
-- never before now).
-- Only completions whose lease still holds the job change it; their indexes
-- come back.
-- The redundant id condition lets the planner fetch the batch's jobs by
-- primary key; see jobs_state_lock.sql for its form.
UPDATE jobs
SET status = u.status,
    last_error = COALESCE(u.error, jobs.last_error),
    lease_token = NULL,
    lease_until = NULL,
    updated_at = $1,
    due_at = CASE WHEN u.due_at IS NOT NULL THEN GREATEST(u.due_at, $1) END
FROM UNNEST($2::bigint[], $3::uuid[], $4::text[], $5::bigint[], $6::text[], $7::text[],
            $8::bigint[])
    AS u(idx, id, token, attempt, status, error, due_at)
WHERE jobs.id = u.id AND jobs.lease_token = u.token AND jobs.attempts = u.attempt
  AND jobs.id = ANY (ARRAY(SELECT unnest($3::uuid[])))
RETURNING u.idx, jobs.queue, jobs.attempts, jobs.replay_count
