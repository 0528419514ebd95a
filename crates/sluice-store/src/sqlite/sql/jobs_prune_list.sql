-- ?1 before, ?2 limit: ids (a JSON array) of succeeded jobs last changed
-- before ?1, oldest first.
SELECT json_group_array(id) AS ids
FROM (
    SELECT id
    FROM jobs
    WHERE status = 'succeeded' AND updated_at < ?1
    ORDER BY updated_at
    LIMIT ?2
)
