SELECT queue
FROM queue_state
WHERE paused
ORDER BY queue
