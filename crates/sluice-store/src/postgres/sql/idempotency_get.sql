-- $1 scopes, $2 keys
-- Each key is looked up by primary key (OFFSET 0 keeps the lookup per key):
-- joined to the batch as a plain join, a batch of a few percent of the
-- table could be planned as a sequential scan of every key.
SELECT i.scope, i.key, i.fingerprint, i.job_ids::text AS job_ids
FROM UNNEST($1::text[], $2::text[]) AS u(scope, key)
CROSS JOIN LATERAL (
    SELECT s.scope, s.key, s.fingerprint, s.job_ids
    FROM idempotency AS s
    WHERE s.scope = u.scope AND s.key = u.key
    OFFSET 0
) AS i
