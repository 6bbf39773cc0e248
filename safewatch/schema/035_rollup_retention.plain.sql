-- Retention for the 1-minute rollups, as for the readings they come from: kept 400 days, in daily
-- partitions dropped whole. Without it they grew for ever: 160,000 rows a minute for 20,000
-- equipment, and deleting a day of them (230 million rows) would bloat the table and fill the WAL.
-- The hourly rollups are kept: they are the long record, and charts older than 400 days read them.
--
-- The rollups written before this migration, if any, become one partition holding everything up to
-- the end of today (or of the latest minute rolled up, if later) and named for that day, like any
-- daily partition: it is dropped whole once that day is past retention. ATTACH reads it once.

ALTER TABLE readings_1m RENAME TO readings_1m_before_partitions;
ALTER INDEX readings_1m_pkey RENAME TO readings_1m_before_partitions_pkey;
ALTER INDEX readings_1m_bucket_brin RENAME TO readings_1m_before_partitions_bucket_brin;

CREATE TABLE readings_1m (LIKE readings_1m_before_partitions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (bucket);
ALTER TABLE readings_1m ADD PRIMARY KEY (equipment_id, metric_id, bucket);
CREATE INDEX readings_1m_bucket_brin ON readings_1m USING brin (bucket) WITH (pages_per_range = 32, autosummarize = on);
-- Rollups of minutes outside every daily partition (the service down for over a week) land here.
CREATE TABLE readings_1m_default PARTITION OF readings_1m DEFAULT;

DO $$
DECLARE
    last_day date := greatest(now()::date, (SELECT max(bucket)::date FROM readings_1m_before_partitions));
    name text := 'readings_1m_p' || to_char(last_day, 'YYYYMMDD');
BEGIN
    IF NOT EXISTS (SELECT FROM readings_1m_before_partitions) THEN
        DROP TABLE readings_1m_before_partitions;  -- a new database: daily partitions from the start
        RETURN;
    END IF;
    EXECUTE format('ALTER TABLE readings_1m_before_partitions RENAME TO %I', name);
    EXECUTE format('ALTER TABLE readings_1m ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)',
                   name, (last_day + 1)::timestamptz);
END $$;

-- The tables kept in daily partitions, and the column each is partitioned on: the two functions
-- below create and drop the partitions of each table listed here.
CREATE TABLE daily_partitioned (parent text PRIMARY KEY, time_column text NOT NULL);
INSERT INTO daily_partitioned (parent, time_column) VALUES
    ('boiler_readings', 'time'), ('pressure_vessel_readings', 'time'), ('elevator_readings', 'time'),
    ('readings_1m', 'bucket');

-- Daily partitions ahead.
CREATE OR REPLACE FUNCTION safewatch_ensure_partitions(from_day date, to_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    parent text;
    day date;
    made integer := 0;
    name text;
BEGIN
    FOR parent IN SELECT p.parent FROM daily_partitioned p ORDER BY 1 LOOP
        day := from_day;
        WHILE day <= to_day LOOP
            name := format('%s_p%s', parent, to_char(day, 'YYYYMMDD'));
            IF to_regclass(name) IS NULL THEN
                BEGIN
                    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                                   name, parent, day::timestamptz, (day + 1)::timestamptz);
                    made := made + 1;
                EXCEPTION
                    WHEN check_violation THEN
                        -- The default partition already holds rows of that day: leave them there.
                        RAISE NOTICE '% for % stay in %_default', parent, day, parent;
                    WHEN invalid_object_definition THEN
                        -- Another partition holds that day: the rollups from before partitioning.
                        RAISE NOTICE '% for % are in an earlier partition', parent, day;
                END;
            END IF;
            day := day + 1;
        END LOOP;
    END LOOP;
    RETURN made;
END $$;

-- Retention: drop daily partitions, of the readings and of their 1-minute rollups, wholly older
-- than ``keep``; return how many. Rows that landed in a default partition (a day with no partition
-- of its own when they were written) are deleted once older than ``keep``: it holds few, if any.
CREATE OR REPLACE FUNCTION safewatch_drop_old_partitions(keep interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    parent record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent::regclass::text IN (SELECT p.parent FROM daily_partitioned p)
          AND c.relname ~ '_p\d{8}$'
          AND to_date(right(c.relname, 8), 'YYYYMMDD') + 1 <= (now() - keep)::date
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    FOR parent IN SELECT p.parent, p.time_column FROM daily_partitioned p LOOP
        EXECUTE format('DELETE FROM %I WHERE %I < now() - $1', parent.parent || '_default', parent.time_column)
        USING keep;
    END LOOP;
    RETURN dropped;
END $$;

SELECT safewatch_ensure_partitions((now() - interval '2 days')::date, (now() + interval '7 days')::date);
