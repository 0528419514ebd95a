SELECT fingerprint, job_ids
FROM idempotency
WHERE scope = ?1 AND key = ?2
