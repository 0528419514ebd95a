INSERT INTO messages (topic, job_id, msg_key, attributes, content_type, body, published_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
