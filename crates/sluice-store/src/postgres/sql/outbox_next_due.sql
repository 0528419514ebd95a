-- $1 now
-- Rows a held claim has deleted, not yet committed, are locked and skipped:
-- they are being published, as leased rows are.
SELECT available_at AS due
FROM outbox
WHERE lease_token IS NULL OR lease_until < $1
ORDER BY available_at
LIMIT 1
FOR KEY SHARE SKIP LOCKED
