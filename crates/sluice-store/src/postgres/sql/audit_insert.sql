-- $1 at, $2 actor, $3 action, $4 target, $5 count, $6 detail JSON
INSERT INTO audit_log (at, actor, action, target, count, detail)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
