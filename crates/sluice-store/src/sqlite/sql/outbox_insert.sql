INSERT INTO outbox (job_id, queue, attempt, available_at, created_at)
VALUES (?1, ?2, ?3, ?4, ?5)
