-- What an outbox row publishes: the job to its queue's topic ('job'), or
-- the news that the job died to the queue's dead-letter topic
-- ('dead_letter', with the reason in `error`). Payload, key and trace
-- context come from the job row, as for job rows. A constant default adds
-- the column without rewriting the table.
ALTER TABLE outbox
    ADD COLUMN kind text NOT NULL DEFAULT 'job',
    ADD COLUMN error text,                            -- dead_letter rows: the reason
    ADD CONSTRAINT outbox_kind CHECK (kind IN ('job', 'dead_letter')),
    ADD CONSTRAINT outbox_dead_letter_error CHECK (kind = 'job' OR error IS NOT NULL);
