-- $1 scopes, $2 keys
SELECT i.scope, i.key, i.fingerprint, i.job_ids::text AS job_ids
FROM idempotency AS i
JOIN UNNEST($1::text[], $2::text[]) AS u(scope, key)
  ON i.scope = u.scope AND i.key = u.key
