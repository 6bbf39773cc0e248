-- Dead letters are stored once per message: a redelivered message (after an ingest kill -9, a broker
-- restart, a reconnect during a database outage) finds its key taken and stores nothing new. The key
-- is sha256(topic, 0x00, payload), computed by the ingest (ingest.batching.dead_letter_key). Rows made
-- by re-processing (retry_of set) and rows stored before this migration have none.
ALTER TABLE dead_letters ADD COLUMN message_key bytea;
CREATE UNIQUE INDEX dead_letters_message_key_idx ON dead_letters (message_key) WHERE message_key IS NOT NULL;

-- A gateway's state follows the gateway's own order (docs/mqtt-contract.md, "Gateway status"):
--   gateway_ts  the newest time the gateway itself stamped on a status it sent (kept across a last will)
--   heard_at    when the ingest received the status now shown (its own clock)
--   timed       whether the status now shown carried the gateway's time (false: a last will)
ALTER TABLE gateway_status
    ADD COLUMN gateway_ts timestamptz,
    ADD COLUMN heard_at timestamptz,
    ADD COLUMN timed boolean NOT NULL DEFAULT true;
UPDATE gateway_status SET gateway_ts = since, heard_at = updated_at;
ALTER TABLE gateway_status ALTER COLUMN heard_at SET NOT NULL, ALTER COLUMN heard_at SET DEFAULT now();
