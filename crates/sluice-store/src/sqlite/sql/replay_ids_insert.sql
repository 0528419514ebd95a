-- ?1 replay id, ?2 JSON array of job ids (the snapshot, in order)
INSERT INTO replay_ids (replay_id, idx, job_id)
SELECT ?1, key, value
FROM json_each(?2)
