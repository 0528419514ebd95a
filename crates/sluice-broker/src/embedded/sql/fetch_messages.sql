-- ?1: JSON array of seqs.
SELECT seq, msg_key, attributes, content_type, body
FROM messages
WHERE seq IN (SELECT value FROM json_each(?1))
