-- ?1 job id
DELETE FROM jobs WHERE id = ?1
