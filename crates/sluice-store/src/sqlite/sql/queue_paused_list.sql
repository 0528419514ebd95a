SELECT queue
FROM queue_state
WHERE paused = 1
ORDER BY queue
