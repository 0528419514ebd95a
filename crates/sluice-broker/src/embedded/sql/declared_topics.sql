-- ?1: JSON array of topic names; returns those that are declared.
SELECT name FROM topics WHERE name IN (SELECT value FROM json_each(?1))
