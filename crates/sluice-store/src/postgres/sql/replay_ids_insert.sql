-- $1 replay id, $2 job ids (the snapshot, in order)
INSERT INTO replay_ids (replay_id, idx, job_id)
SELECT $1, u.ord - 1, u.job_id
FROM UNNEST($2::uuid[]) WITH ORDINALITY AS u(job_id, ord)
