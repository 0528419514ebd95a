-- What an outbox row publishes: the job to its queue's topic ('job'), or
-- the news that the job died to the queue's dead-letter topic
-- ('dead_letter', with the reason in `error`). Payload, key and trace
-- context come from the job row, as for job rows.
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'job'
    CHECK (kind IN ('job', 'dead_letter'));
ALTER TABLE outbox ADD COLUMN error TEXT;             -- dead_letter rows: the reason
