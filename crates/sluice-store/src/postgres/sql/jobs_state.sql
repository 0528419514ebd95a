-- $1 job ids: what a start decides on, read without locks (the start is a
-- compare-and-set on it, see attempt_start.sql).
SELECT id, status, attempts, lease_token, lease_until, replay_count
FROM jobs
WHERE id = ANY($1)
