-- Retention (see RetentionStore): the pruner finds succeeded jobs by their
-- last change and idempotency keys by their age without a table scan. The
-- jobs index holds succeeded jobs only (unfinished and dead ones cost it
-- nothing); a job's success now adds one entry to it, at its right edge.
-- Built once, blocking writes to jobs and idempotency meanwhile (for large
-- tables, upgrade with the other sluice processes stopped).
CREATE INDEX jobs_succeeded ON jobs (updated_at) WHERE status = 'succeeded';
CREATE INDEX idempotency_created ON idempotency (created_at);
