-- Alerts with their full audit trail (ISA-18.2 states), and the notification outbox.

CREATE TABLE alerts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    equipment_id  integer NOT NULL REFERENCES equipment (id),
    rule_key      text NOT NULL,
    severity      text NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'warning')),
    state         text NOT NULL CHECK (state IN ('active_unack', 'active_ack', 'returned_unack', 'normal',
                                                 'shelved', 'suppressed', 'out_of_service')),
    active        boolean NOT NULL,               -- the condition is present now
    latched       boolean NOT NULL DEFAULT false,
    level         text NOT NULL DEFAULT 'banner' CHECK (level IN ('banner', 'league', 'region')),
    division_code text NOT NULL REFERENCES divisions (code),  -- the equipment's banner
    league_code   text NOT NULL REFERENCES divisions (code),
    metric        text,
    value         double precision,
    limit_value   double precision,
    message       text NOT NULL,
    opened_at     timestamptz NOT NULL,           -- event time of the first offending reading
    updated_at    timestamptz NOT NULL,
    cleared_at    timestamptz,                    -- event time the condition returned to normal
    closed_at     timestamptz,                    -- state became normal: nothing left to do
    committed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- One open alert per (equipment, rule): a re-trigger updates it.
CREATE UNIQUE INDEX alerts_one_open_idx ON alerts (equipment_id, rule_key) WHERE closed_at IS NULL;
CREATE INDEX alerts_division_idx ON alerts (division_code, opened_at DESC);
CREATE INDEX alerts_league_idx ON alerts (league_code, opened_at DESC);

CREATE TABLE alert_transitions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id   bigint NOT NULL REFERENCES alerts (id),
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    from_state text,
    to_state   text NOT NULL,
    actor      text NOT NULL,
    reason     text NOT NULL
);
CREATE INDEX alert_transitions_alert_idx ON alert_transitions (alert_id, id);

CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    alert_id        bigint REFERENCES alerts (id),
    channel         text NOT NULL,
    target          text,
    idempotency_key text NOT NULL UNIQUE,
    payload         jsonb NOT NULL,
    due_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    delivered_at    timestamptz,
    expires_at      timestamptz NOT NULL DEFAULT clock_timestamp() + interval '1 day'
);
CREATE INDEX outbox_pending_idx ON outbox (due_at) WHERE delivered_at IS NULL;
