-- $1 replay id, $2 position reached, $3 replayed to add, $4 skipped to add,
-- $5 now. The position never moves back.
UPDATE replays
SET position = GREATEST(position, $2),
    replayed = replayed + $3,
    skipped = skipped + $4,
    updated_at = $5
WHERE id = $1
