INSERT INTO idempotency (scope, key, fingerprint, job_ids, created_at)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (scope, key) DO NOTHING
