-- Readings on plain PostgreSQL: the 1-minute / 1-hour rollups as tables of the same names and
-- columns as TimescaleDB's continuous aggregates, maintained by the service:
--   * the ingest writer marks the minutes each batch touched (rollup_dirty, one row per minute and
--     database session, so concurrent writers never wait on each other);
--   * safewatch_refresh_rollups(), called periodically by the ingest workers, recomputes those
--     minutes from the readings, then the hours they belong to from the minutes.
-- Recomputing whole buckets from the source keeps the rollups exact under late and redelivered data.

CREATE TABLE readings_1m (
    bucket       timestamptz NOT NULL,
    equipment_id integer NOT NULL,
    metric_id    smallint NOT NULL,
    avg          double precision NOT NULL,
    min          double precision NOT NULL,
    max          double precision NOT NULL,
    n            bigint NOT NULL,
    sum          double precision NOT NULL,
    PRIMARY KEY (equipment_id, metric_id, bucket)
);
CREATE TABLE readings_1h (LIKE readings_1m INCLUDING ALL);

CREATE TABLE rollup_dirty (
    bucket    timestamptz NOT NULL,       -- a minute
    backend   integer NOT NULL,           -- pg_backend_pid() of the writer
    marked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket, backend)
);

-- Recomputing a minute reads every equipment's rows of that minute: a BRIN index on time makes that
-- a range scan at almost no cost to the writers (readings arrive in time order).
CREATE INDEX readings_time_brin ON readings USING brin (time) WITH (pages_per_range = 32);

CREATE FUNCTION safewatch_refresh_rollups(upto timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    minutes timestamptz[];
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
    INSERT INTO readings_1m (bucket, equipment_id, metric_id, avg, min, max, n, sum)
    SELECT m.bucket, r.equipment_id, r.metric_id, avg(r.value), min(r.value), max(r.value), count(*), sum(r.value)
    FROM unnest(minutes) AS m(bucket)
    JOIN readings r ON r.time >= m.bucket AND r.time < m.bucket + interval '1 minute'
    GROUP BY 1, 2, 3;
    SELECT array_agg(DISTINCT date_trunc('hour', b)) INTO hours FROM unnest(minutes) AS b;
    DELETE FROM readings_1h WHERE bucket = ANY (hours);
    INSERT INTO readings_1h (bucket, equipment_id, metric_id, avg, min, max, n, sum)
    SELECT h.bucket, m.equipment_id, m.metric_id, sum(m.sum) / sum(m.n), min(m.min), max(m.max), sum(m.n), sum(m.sum)
    FROM unnest(hours) AS h(bucket)
    JOIN readings_1m m ON m.bucket >= h.bucket AND m.bucket < h.bucket + interval '1 hour'
    GROUP BY 1, 2, 3;
    RETURN cardinality(minutes);
END $$;

-- Retention on plain PostgreSQL: drop daily partitions entirely older than ``keep``.
CREATE FUNCTION safewatch_drop_old_partitions(keep interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'readings'::regclass AND c.relname ~ '^readings_p\d{8}$'
          AND to_date(substr(c.relname, 11), 'YYYYMMDD') + 1 <= (now() - keep)::date
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END $$;
