-- The alert engine's workflow (issue 6): shelving, assignment, notes, per-equipment rule overrides,
-- nuisance tracking (chattering, floods). Additive only: 004_alerts.sql stays as it is.

ALTER TABLE alerts
    ADD COLUMN kind          text NOT NULL DEFAULT 'threshold',  -- the rule kind (threshold, event, anomaly …)
    ADD COLUMN shelved_until timestamptz,                        -- set while shelved: when it comes back
    ADD COLUMN shelved_by    text,
    ADD COLUMN assignee      text,                               -- who is handling it (a username)
    ADD COLUMN suppressed_by text,                               -- cause rule key, or 'equipment_status'
    ADD COLUMN chattering    boolean NOT NULL DEFAULT false,     -- ≥ 3 transitions a minute seen
    ADD COLUMN raise_count   integer NOT NULL DEFAULT 1;         -- re-triggers update the open alert

CREATE INDEX alerts_shelved_idx ON alerts (shelved_until) WHERE state = 'shelved';
CREATE INDEX alerts_rule_idx ON alerts (rule_key, opened_at);
CREATE INDEX alerts_open_idx ON alerts (division_code) WHERE closed_at IS NULL;

-- Who said what about an alert besides state changes (those are alert_transitions): comments and
-- assignments, each with its author and time.
CREATE TABLE alert_notes (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id bigint NOT NULL REFERENCES alerts (id),
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    author   text NOT NULL,
    kind     text NOT NULL CHECK (kind IN ('comment', 'assign')),
    body     text NOT NULL
);
CREATE INDEX alert_notes_alert_idx ON alert_notes (alert_id, id);

-- One rule changed for one equipment: a limit, a deadband, delays, or the rule switched off.
CREATE TABLE alert_rule_overrides (
    equipment_id integer NOT NULL REFERENCES equipment (id),
    rule_key     text NOT NULL,
    limit_value  double precision,
    low_value    double precision,
    deadband     double precision CHECK (deadband >= 0),
    on_delay_s   double precision CHECK (on_delay_s >= 0),
    off_delay_s  double precision CHECK (off_delay_s >= 0),
    enabled      boolean NOT NULL DEFAULT true,
    reason       text NOT NULL,
    updated_by   text NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (equipment_id, rule_key)
);

-- Alert floods per division (> 10 alerts in 10 minutes, EEMUA 191), as the alert workers saw them.
CREATE TABLE alert_floods (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    division_code text NOT NULL REFERENCES divisions (code),
    started_at    timestamptz NOT NULL,   -- event time of the alert that made it a flood
    ended_at      timestamptz,
    peak_count    integer NOT NULL
);
CREATE INDEX alert_floods_division_idx ON alert_floods (division_code, started_at DESC);
CREATE UNIQUE INDEX alert_floods_one_open_idx ON alert_floods (division_code) WHERE ended_at IS NULL;
