-- Wakes every relay LISTENing on the channel, once this transaction commits
-- (one notification per committed transaction, never per row).
SELECT pg_notify('sluice_outbox', '')
