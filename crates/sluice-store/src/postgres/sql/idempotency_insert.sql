-- $1 scopes, $2 keys, $3 fingerprints, $4 id lists (JSON arrays), $5 now.
-- Keys are distinct within one call; sorted so concurrent batches take the
-- key locks in one order. Returns the keys inserted (the others were taken).
INSERT INTO idempotency (scope, key, fingerprint, job_ids, created_at)
SELECT u.scope, u.key, u.fingerprint, u.job_ids::jsonb, $5
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])
    AS u(scope, key, fingerprint, job_ids)
ORDER BY u.scope, u.key
ON CONFLICT (scope, key) DO NOTHING
RETURNING scope, key
