INSERT OR IGNORE INTO topics (name, created_at) VALUES (?1, ?2)
