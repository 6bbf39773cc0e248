-- Re-processing dead letters (API and CLI): who re-ran one, when, and what came of it. A dead
-- letter that fails again stays as it was and the new attempt's reason is a new row pointing back.
ALTER TABLE dead_letters
    ADD COLUMN reprocessed_by text,
    ADD COLUMN reprocess_result text CHECK (reprocess_result IN ('stored', 'failed_again')),
    ADD COLUMN retry_of bigint REFERENCES dead_letters (id);
CREATE INDEX dead_letters_pending_idx ON dead_letters (id DESC) WHERE reprocessed_at IS NULL;
CREATE INDEX dead_letters_gateway_idx ON dead_letters (gateway_id, id DESC);
