SELECT queue, circuit, circuit_until, circuit_changed_at
FROM queue_state
WHERE circuit <> 'closed'
ORDER BY queue
