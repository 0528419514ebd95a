-- $1 now
SELECT MIN(available_at) AS due
FROM outbox
WHERE lease_token IS NULL OR lease_until < $1
