-- The (queue, status) index covers unfinished and dead jobs only. The
-- queries of every running process that read it (autoscaling figures, the
-- redrive of jobs a broker lost) skip succeeded jobs, which are most of the
-- table and grow without bound; a job's last update (to 'succeeded') then
-- adds no entry, and the index stays the size of the live work. The admin
-- API's per-queue counts (queue_stats.sql), which count succeeded jobs
-- too, now read the table instead of this index: slower on a large table,
-- but only on request. Built once, blocking writes to jobs meanwhile (for
-- a large table, upgrade with the other sluice processes stopped).
CREATE INDEX jobs_unfinished ON jobs (queue, status, created_at)
    WHERE status <> 'succeeded';
DROP INDEX jobs_queue_status;
