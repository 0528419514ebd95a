-- Retention (see RetentionStore): the pruner finds succeeded jobs by their
-- last change and idempotency keys by their age without a table scan. The
-- jobs index holds succeeded jobs only.
CREATE INDEX jobs_succeeded ON jobs (updated_at) WHERE status = 'succeeded';
CREATE INDEX idempotency_created ON idempotency (created_at);
