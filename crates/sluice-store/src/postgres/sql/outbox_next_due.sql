-- $1 now
-- Rows a held claim has locked are skipped: they are being published, as
-- leased rows are. Telling them apart takes a lock (a write, and a commit)
-- on the row found, for the statement's duration; relays ask only when idle.
SELECT available_at AS due
FROM outbox
WHERE lease_token IS NULL OR lease_until < $1
ORDER BY available_at
LIMIT 1
FOR KEY SHARE SKIP LOCKED
