-- The alert worker's in-memory state per equipment (conditions with their delays in progress, rate and
-- flatline windows, chatter history, the anomaly detector's learning), saved on a graceful stop and
-- loaded at start, so a restart neither re-learns for an hour nor forgets a breach half-way through
-- its on-delay. A crash loses only what changed since the last save.
CREATE TABLE alert_engine_state (
    equipment_id integer PRIMARY KEY REFERENCES equipment (id),
    state        jsonb NOT NULL,
    saved_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
