-- $1 queue, $2 now. Removes the queue's lapsed reports.
DELETE FROM worker_concurrency WHERE queue = $1 AND expires_at <= $2
