-- The (queue, status) index covers unfinished and dead jobs only. Every
-- query that reads it (autoscaling figures, the redrive of jobs a broker
-- lost) skips succeeded jobs, which are most of the table and grow
-- without bound; a job's last update (to 'succeeded') then adds no entry,
-- and the index stays the size of the live work. Built once, blocking
-- writes to jobs meanwhile.
CREATE INDEX jobs_unfinished ON jobs (queue, status, created_at)
    WHERE status <> 'succeeded';
DROP INDEX jobs_queue_status;
