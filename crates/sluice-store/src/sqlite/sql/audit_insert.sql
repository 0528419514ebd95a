INSERT INTO audit_log (at, actor, action, target, count, detail)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
