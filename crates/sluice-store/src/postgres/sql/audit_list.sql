-- $1 limit: newest first
SELECT at, actor, action, target, count, detail::text AS detail
FROM audit_log
ORDER BY at DESC, id DESC
LIMIT $1
