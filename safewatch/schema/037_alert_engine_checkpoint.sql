-- The alert engine's checkpoint (issue 21): alert decisions after a kill -9 equal those of a worker that
-- never stopped. A worker acknowledges a delivery to the broker only once a checkpoint covering it has
-- committed; what it had not acknowledged the broker's persistent session delivers again, and the engine
-- (which decides the same whatever the batch boundaries) replays it from the checkpoint.
--
-- Per equipment: its state packed (alerts/engine/checkpoint.py, MessagePack) beside the plain jsonb of
-- the older graceful-stop save, which stays readable (a state seeded as jsonb is used until the first
-- checkpoint replaces it), and apart from it the anomaly detectors' bit tables (3 KB a metric), written
-- only when a reading marked a context never seen before. Stored uncompressed: pglz would only cost.
ALTER TABLE alert_engine_state ALTER COLUMN state DROP NOT NULL,
    ADD COLUMN packed bytea,
    ADD COLUMN tables bytea;
ALTER TABLE alert_engine_state ALTER COLUMN packed SET STORAGE EXTERNAL, ALTER COLUMN tables SET STORAGE EXTERNAL;

-- Per shard (the sorted league codes the worker owns; '' for all): its event time, flood windows and
-- the fingerprints of the deliveries its last checkpoint covered.
CREATE TABLE alert_engine_shard (
    shard    text PRIMARY KEY,
    packed   bytea NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The ordinal of the last engine effect written per (equipment, rule), in the transaction that wrote it:
-- a replayed effect at or below it was written before the crash and is skipped.
CREATE TABLE alert_effect_marks (
    equipment_id integer NOT NULL REFERENCES equipment (id),
    rule_key     text NOT NULL,
    seq          bigint NOT NULL,
    PRIMARY KEY (equipment_id, rule_key)
);

-- The event time of an engine transition (the reading, event or silence tick that caused it), so an
-- alert's history reads in the equipment's own time as well as in commit time (``at``).
ALTER TABLE alert_transitions ADD COLUMN event_at timestamptz;
