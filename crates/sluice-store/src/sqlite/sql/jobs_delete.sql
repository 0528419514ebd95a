-- ?1 JSON array of job ids.
DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(?1))
