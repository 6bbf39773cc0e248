-- Readings on TimescaleDB: a hypertable with daily chunks, the same columns and key as plain.

CREATE TABLE metrics (
    id       smallint PRIMARY KEY,
    key      text NOT NULL UNIQUE,
    unit     text NOT NULL,
    category text NOT NULL
);

CREATE TABLE readings (
    time         timestamptz NOT NULL,
    equipment_id integer NOT NULL,
    metric_id    smallint NOT NULL,
    value        double precision NOT NULL,
    PRIMARY KEY (equipment_id, metric_id, time)
);
SELECT create_hypertable('readings', 'time', chunk_time_interval => interval '1 day');

-- Same signature as the plain variant so callers need not know which storage they run on.
CREATE FUNCTION safewatch_ensure_partitions(from_day date, to_day date) RETURNS integer
LANGUAGE sql AS $$ SELECT 0 $$;
