-- $1 queue, $2 claim until, $3 now. Only an open or half-open circuit whose
-- time is up; concurrent claims serialize on the row, so one wins.
UPDATE queue_state
SET circuit = 'half_open',
    circuit_until = $2,
    circuit_changed_at = $3,
    updated_at = $3
WHERE queue = $1
  AND circuit IN ('open', 'half_open')
  AND circuit_until <= $3
RETURNING 1
