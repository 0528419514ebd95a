-- $1 replay id, $2 position reached, $3 replayed to add, $4 skipped to add,
-- $5 now. The position never moves back, nor past the snapshot's end.
UPDATE replays
SET position = GREATEST(position, LEAST($2, matched)),
    replayed = replayed + $3,
    skipped = skipped + $4,
    updated_at = $5
WHERE id = $1
