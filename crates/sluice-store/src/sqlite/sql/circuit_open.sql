-- ?1 queue, ?2 open until, ?3 now. Opens unless already open; a row that
-- comes back means this statement opened it.
INSERT INTO queue_state (queue, updated_at, circuit, circuit_until, circuit_changed_at)
VALUES (?1, ?3, 'open', ?2, ?3)
ON CONFLICT (queue) DO UPDATE
SET circuit = 'open',
    circuit_until = excluded.circuit_until,
    circuit_changed_at = excluded.circuit_changed_at,
    updated_at = excluded.updated_at
WHERE queue_state.circuit <> 'open'
RETURNING 1
