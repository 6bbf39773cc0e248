-- Readings on plain PostgreSQL: native range partitions by day, created ahead by
-- safewatch_ensure_partitions() (called at migration and by the ingest workers).

CREATE TABLE metrics (
    id       smallint PRIMARY KEY,
    key      text NOT NULL UNIQUE,
    unit     text NOT NULL,
    category text NOT NULL
);

-- Narrow layout: (time, equipment, metric, value). The primary key makes writes idempotent.
CREATE TABLE readings (
    time         timestamptz NOT NULL,
    equipment_id integer NOT NULL,
    metric_id    smallint NOT NULL,
    value        double precision NOT NULL,
    PRIMARY KEY (equipment_id, metric_id, time)
) PARTITION BY RANGE (time);

-- Rows outside every daily partition (replays of old data, skewed clocks) land here, not in an error.
CREATE TABLE readings_default PARTITION OF readings DEFAULT;

CREATE FUNCTION safewatch_ensure_partitions(from_day date, to_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day date := from_day;
    made integer := 0;
    name text;
BEGIN
    WHILE day <= to_day LOOP
        name := format('readings_p%s', to_char(day, 'YYYYMMDD'));
        IF to_regclass(name) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
                               name, day::timestamptz, (day + 1)::timestamptz);
                made := made + 1;
            EXCEPTION WHEN check_violation THEN
                -- The default partition already holds rows of that day: leave them there.
                RAISE NOTICE 'readings for % stay in readings_default', day;
            END;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN made;
END $$;

SELECT safewatch_ensure_partitions((now() - interval '2 days')::date, (now() + interval '7 days')::date);
