-- A new group starts at cursor 0: it gets every message still stored.
INSERT OR IGNORE INTO consumer_groups (topic, grp, cursor, created_at) VALUES (?1, ?2, 0, ?3)
