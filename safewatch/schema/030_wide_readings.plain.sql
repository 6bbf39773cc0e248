-- Readings move to the wide layout: one table per equipment category, one row per equipment and
-- instant, a nullable column per metric (safewatch/schema/layout.py derives the same from the
-- catalogue; tests/integration/test_schema.py holds the two together). Measured under a sustained
-- stream it writes 6 to 9 times faster than the narrow table and takes a fifth of the disk
-- (docs/decisions.md, "Readings, wide"). Readers keep the narrow shape through the view readings.
--
-- Plain PostgreSQL: each table in daily range partitions like the narrow one was, the existing rows
-- copied over, then the narrow table dropped. A metric added later is one ALTER TABLE … ADD COLUMN
-- (nullable: no rewrite) and a new version of the view.

CREATE TABLE boiler_readings (
    time               timestamptz NOT NULL,
    equipment_id       integer NOT NULL,
    drum_pressure      double precision,
    drum_level         double precision,
    steam_temp         double precision,
    steam_flow         double precision,
    feedwater_temp     double precision,
    feedwater_pressure double precision,
    furnace_temp       double precision,
    furnace_pressure   double precision,
    flue_gas_temp      double precision,
    flue_gas_o2        double precision,
    burner_on          double precision,
    outlet_water_temp  double precision,
    return_water_temp  double precision,
    PRIMARY KEY (equipment_id, time)
) PARTITION BY RANGE (time);
CREATE TABLE boiler_readings_default PARTITION OF boiler_readings DEFAULT;
-- Recomputing a rollup minute reads every equipment's rows of that minute: a BRIN index on time
-- makes that a range scan at almost no cost to the writers (rows arrive in time order).
CREATE INDEX boiler_readings_time_brin ON boiler_readings USING brin (time) WITH (pages_per_range = 32);
CREATE TABLE pressure_vessel_readings (
    time               timestamptz NOT NULL,
    equipment_id       integer NOT NULL,
    vessel_pressure    double precision,
    vessel_temp        double precision,
    compressor_on      double precision,
    PRIMARY KEY (equipment_id, time)
) PARTITION BY RANGE (time);
CREATE TABLE pressure_vessel_readings_default PARTITION OF pressure_vessel_readings DEFAULT;
CREATE INDEX pressure_vessel_readings_time_brin ON pressure_vessel_readings USING brin (time) WITH (pages_per_range = 32);
CREATE TABLE elevator_readings (
    time               timestamptz NOT NULL,
    equipment_id       integer NOT NULL,
    service_mode       double precision,
    car_moving         double precision,
    direction          double precision,
    door_zone          double precision,
    floor              double precision,
    door_locked        double precision,
    passenger_present  double precision,
    mains_power        double precision,
    speed              double precision,
    load               double precision,
    run_hours          double precision,
    trips              double precision,
    door_cycles        double precision,
    PRIMARY KEY (equipment_id, time)
) PARTITION BY RANGE (time);
CREATE TABLE elevator_readings_default PARTITION OF elevator_readings DEFAULT;
CREATE INDEX elevator_readings_time_brin ON elevator_readings USING brin (time) WITH (pages_per_range = 32);

-- The same partitions for each table, and the same retention, as for the narrow table.
CREATE OR REPLACE FUNCTION safewatch_ensure_partitions(from_day date, to_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    parent text;
    day date;
    made integer := 0;
    name text;
BEGIN
    FOREACH parent IN ARRAY ARRAY['boiler_readings', 'pressure_vessel_readings', 'elevator_readings'] LOOP
        day := from_day;
        WHILE day <= to_day LOOP
            name := format('%s_p%s', parent, to_char(day, 'YYYYMMDD'));
            IF to_regclass(name) IS NULL THEN
                BEGIN
                    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                                   name, parent, day::timestamptz, (day + 1)::timestamptz);
                    made := made + 1;
                EXCEPTION WHEN check_violation THEN
                    -- The default partition already holds rows of that day: leave them there.
                    RAISE NOTICE '% for % stay in %_default', parent, day, parent;
                END;
            END IF;
            day := day + 1;
        END LOOP;
    END LOOP;
    RETURN made;
END $$;

-- Retention: drop daily partitions entirely older than ``keep``.
CREATE OR REPLACE FUNCTION safewatch_drop_old_partitions(keep interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent::regclass::text = ANY (ARRAY['boiler_readings', 'pressure_vessel_readings', 'elevator_readings']) AND c.relname ~ '_p\d{8}$'
          AND to_date(right(c.relname, 8), 'YYYYMMDD') + 1 <= (now() - keep)::date
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END $$;
SELECT safewatch_ensure_partitions((now() - interval '2 days')::date, (now() + interval '7 days')::date);

-- Rows of the narrow table, pivoted: at most one value per metric, equipment and instant (its key).
INSERT INTO boiler_readings (time, equipment_id, drum_pressure, drum_level, steam_temp, steam_flow, feedwater_temp, feedwater_pressure, furnace_temp, furnace_pressure, flue_gas_temp, flue_gas_o2, burner_on, outlet_water_temp, return_water_temp)
SELECT time, equipment_id,
       max(value) FILTER (WHERE metric_id = 1),
       max(value) FILTER (WHERE metric_id = 2),
       max(value) FILTER (WHERE metric_id = 3),
       max(value) FILTER (WHERE metric_id = 4),
       max(value) FILTER (WHERE metric_id = 5),
       max(value) FILTER (WHERE metric_id = 6),
       max(value) FILTER (WHERE metric_id = 7),
       max(value) FILTER (WHERE metric_id = 8),
       max(value) FILTER (WHERE metric_id = 9),
       max(value) FILTER (WHERE metric_id = 10),
       max(value) FILTER (WHERE metric_id = 11),
       max(value) FILTER (WHERE metric_id = 12),
       max(value) FILTER (WHERE metric_id = 13)
FROM readings WHERE metric_id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
GROUP BY equipment_id, time;
INSERT INTO pressure_vessel_readings (time, equipment_id, vessel_pressure, vessel_temp, compressor_on)
SELECT time, equipment_id,
       max(value) FILTER (WHERE metric_id = 20),
       max(value) FILTER (WHERE metric_id = 21),
       max(value) FILTER (WHERE metric_id = 22)
FROM readings WHERE metric_id IN (20, 21, 22)
GROUP BY equipment_id, time;
INSERT INTO elevator_readings (time, equipment_id, service_mode, car_moving, direction, door_zone, floor, door_locked, passenger_present, mains_power, speed, load, run_hours, trips, door_cycles)
SELECT time, equipment_id,
       max(value) FILTER (WHERE metric_id = 40),
       max(value) FILTER (WHERE metric_id = 41),
       max(value) FILTER (WHERE metric_id = 42),
       max(value) FILTER (WHERE metric_id = 43),
       max(value) FILTER (WHERE metric_id = 44),
       max(value) FILTER (WHERE metric_id = 45),
       max(value) FILTER (WHERE metric_id = 46),
       max(value) FILTER (WHERE metric_id = 47),
       max(value) FILTER (WHERE metric_id = 48),
       max(value) FILTER (WHERE metric_id = 49),
       max(value) FILTER (WHERE metric_id = 50),
       max(value) FILTER (WHERE metric_id = 51),
       max(value) FILTER (WHERE metric_id = 52)
FROM readings WHERE metric_id IN (40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52)
GROUP BY equipment_id, time;
DROP TABLE readings;

-- The narrow shape, for readers: the chart queries, the rollup refresh (schema 010) and the tests.
-- A filter on equipment_id and time reaches each table's key and partitions through the UNION ALL.
CREATE VIEW readings AS
SELECT r.time, r.equipment_id, v.metric_id::smallint AS metric_id, v.value
FROM boiler_readings r CROSS JOIN LATERAL (VALUES (1, r.drum_pressure),
                                  (2, r.drum_level),
                                  (3, r.steam_temp),
                                  (4, r.steam_flow),
                                  (5, r.feedwater_temp),
                                  (6, r.feedwater_pressure),
                                  (7, r.furnace_temp),
                                  (8, r.furnace_pressure),
                                  (9, r.flue_gas_temp),
                                  (10, r.flue_gas_o2),
                                  (11, r.burner_on),
                                  (12, r.outlet_water_temp),
                                  (13, r.return_water_temp)) AS v(metric_id, value)
WHERE v.value IS NOT NULL
UNION ALL
SELECT r.time, r.equipment_id, v.metric_id::smallint AS metric_id, v.value
FROM pressure_vessel_readings r CROSS JOIN LATERAL (VALUES (20, r.vessel_pressure),
                                  (21, r.vessel_temp),
                                  (22, r.compressor_on)) AS v(metric_id, value)
WHERE v.value IS NOT NULL
UNION ALL
SELECT r.time, r.equipment_id, v.metric_id::smallint AS metric_id, v.value
FROM elevator_readings r CROSS JOIN LATERAL (VALUES (40, r.service_mode),
                                  (41, r.car_moving),
                                  (42, r.direction),
                                  (43, r.door_zone),
                                  (44, r.floor),
                                  (45, r.door_locked),
                                  (46, r.passenger_present),
                                  (47, r.mains_power),
                                  (48, r.speed),
                                  (49, r.load),
                                  (50, r.run_hours),
                                  (51, r.trips),
                                  (52, r.door_cycles)) AS v(metric_id, value)
WHERE v.value IS NOT NULL;

-- The rollup refresh of schema 010, reading the view one minute at a time: a range on time passes
-- through the view to each table's partitions and BRIN index, a join on time would not.
CREATE OR REPLACE FUNCTION safewatch_refresh_rollups(upto timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    minutes timestamptz[];
    minute timestamptz;
    hours timestamptz[];
BEGIN
    -- One refresher at a time; the others skip (the next call catches up).
    IF NOT pg_try_advisory_xact_lock(x'5AFE0010'::int) THEN
        RETURN 0;
    END IF;
    -- Deleting waits for writers still holding a mark of theirs (they lock it by updating it), so
    -- the recompute below, a later statement, sees their committed rows.
    WITH taken AS (
        DELETE FROM rollup_dirty WHERE bucket < date_bin('1 minute', upto, timestamptz 'epoch')
        RETURNING bucket
    )
    SELECT array_agg(DISTINCT bucket) INTO minutes FROM taken;
    IF minutes IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM readings_1m WHERE bucket = ANY (minutes);
    FOREACH minute IN ARRAY minutes LOOP
        INSERT INTO readings_1m (bucket, equipment_id, metric_id, avg, min, max, n, sum)
        SELECT minute, r.equipment_id, r.metric_id, avg(r.value), min(r.value), max(r.value), count(*), sum(r.value)
        FROM readings r
        WHERE r.time >= minute AND r.time < minute + interval '1 minute'
        GROUP BY 2, 3;
    END LOOP;
    SELECT array_agg(DISTINCT date_trunc('hour', b)) INTO hours FROM unnest(minutes) AS b;
    DELETE FROM readings_1h WHERE bucket = ANY (hours);
    INSERT INTO readings_1h (bucket, equipment_id, metric_id, avg, min, max, n, sum)
    SELECT h.bucket, m.equipment_id, m.metric_id, sum(m.sum) / sum(m.n), min(m.min), max(m.max), sum(m.n), sum(m.sum)
    FROM unnest(hours) AS h(bucket)
    JOIN readings_1m m ON m.bucket >= h.bucket AND m.bucket < h.bucket + interval '1 hour'
    GROUP BY 1, 2, 3;
    RETURN cardinality(minutes);
END $$;
