-- When a job's current outbox row is due (never before it was written): its
-- enqueue's available_at, a retry's, or the time of a redrive or replay. Written by the statements
-- that write the job together with that row. The relay does not rewrite the
-- job when it publishes it, so this is how long a published job has been
-- waiting (autoscaling's backlog age) and how long it has been out for
-- redrive. NULL on jobs from before this column; readers fall back to
-- updated_at.
ALTER TABLE jobs ADD COLUMN due_at bigint;
