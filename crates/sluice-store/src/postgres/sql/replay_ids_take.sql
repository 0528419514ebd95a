-- $1 replay id, $2 first position, $3 end position (exclusive).
-- Takes the snapshot entries in [$2, $3): each is locked (a concurrent call
-- waits for it, then reads it taken) and marked taken. Returns every entry
-- of the range in order, `taken` saying whether an earlier call took it.
WITH range AS MATERIALIZED (
    SELECT idx, job_id, taken
    FROM replay_ids
    WHERE replay_id = $1 AND idx >= $2 AND idx < $3
    ORDER BY idx
    FOR UPDATE
), mark AS (
    UPDATE replay_ids AS r
    SET taken = true
    FROM range
    WHERE r.replay_id = $1 AND r.idx = range.idx AND NOT range.taken
)
SELECT idx, job_id, taken
FROM range
ORDER BY idx
