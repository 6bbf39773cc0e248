-- What ingest keeps besides readings: events, gateway status, and the dead-letter table.

CREATE TABLE events (
    time         timestamptz NOT NULL,
    equipment_id integer NOT NULL REFERENCES equipment (id),
    type         text NOT NULL,
    active       boolean NOT NULL,
    gateway_id   text,
    details      jsonb NOT NULL DEFAULT '{}',
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (equipment_id, type, time, active)
);

CREATE TABLE gateway_status (
    gateway_id text PRIMARY KEY,
    state      text NOT NULL CHECK (state IN ('online', 'offline')),
    since      timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Nothing a gateway sends is lost: what cannot be stored lands here with its reason.
CREATE TABLE dead_letters (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at    timestamptz NOT NULL DEFAULT now(),
    topic          text NOT NULL,
    gateway_id     text,
    equipment_code text,
    reason         text NOT NULL,
    detail         text NOT NULL,
    payload        bytea NOT NULL,
    reprocessed_at timestamptz
);
CREATE INDEX dead_letters_reason_idx ON dead_letters (reason, received_at);
