-- ?1 queue, ?2 now.
UPDATE queue_state
SET circuit = 'closed',
    circuit_until = NULL,
    circuit_changed_at = ?2,
    updated_at = ?2
WHERE queue = ?1 AND circuit <> 'closed'
