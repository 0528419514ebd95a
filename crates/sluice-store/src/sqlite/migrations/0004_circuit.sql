-- The circuit breaker of each queue, shared by its worker processes:
-- 'closed', 'open' (until circuit_until, then one probe may be claimed) or
-- 'half_open' (a probe runs; its claim lapses at circuit_until).
ALTER TABLE queue_state ADD COLUMN circuit TEXT NOT NULL DEFAULT 'closed'
    CHECK (circuit IN ('closed', 'open', 'half_open'));
ALTER TABLE queue_state ADD COLUMN circuit_until BIGINT;
ALTER TABLE queue_state ADD COLUMN circuit_changed_at BIGINT NOT NULL DEFAULT 0;
