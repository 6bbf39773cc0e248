-- The rollup refresh, cheaper in three ways, each measured by bench/ingest/rollups.py:
--
-- * It reads only the buckets it recomputes. It found a minute's or an hour's rollups by scanning the
--   whole of readings_1m / readings_1h (their key leads with the equipment, for the charts), and those
--   tables grow with history: 160,000 rows a minute for 20,000 equipment. A BRIN index on bucket makes
--   each a range read (rows are written in bucket order).
-- * A minute is aggregated from the wide tables, a column per metric and a group per equipment, then
--   turned narrow: a quarter of the work of grouping the narrow view's rows by equipment and metric,
--   for the same values (sums up to the order their terms are added in, which SQL leaves to the plan).
-- * A minute rolled up for the first time is added to its hour (counts and sums added, extremes
--   compared) instead of the hour being re-aggregated from all its minutes at every refresh, which at
--   minute 59 re-read 59 minutes of rollups each time. An hour whose minute is recomputed (late or
--   redelivered data) is still re-aggregated whole: what the minute held before is gone, so it cannot
--   be taken out of the hour.

CREATE INDEX readings_1m_bucket_brin ON readings_1m USING brin (bucket) WITH (pages_per_range = 32, autosummarize = on);
CREATE INDEX readings_1h_bucket_brin ON readings_1h USING brin (bucket) WITH (pages_per_range = 32, autosummarize = on);

CREATE OR REPLACE FUNCTION safewatch_refresh_rollups(upto timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    minutes timestamptz[];
    minute timestamptz;
    hour timestamptz;
    added timestamptz[] := '{}';   -- minutes rolled up for the first time
    redone timestamptz[] := '{}';  -- hours of minutes rolled up again
    per_table text[];              -- each wide table's minute rollup, $1 the minute
BEGIN
    -- One refresher at a time; the others skip (the next call catches up).
    IF NOT pg_try_advisory_xact_lock(x'5AFE0010'::int) THEN
        RETURN 0;
    END IF;
    -- Deleting waits for writers still holding a mark of theirs (they lock it by updating it), so
    -- the recompute below, a later statement, sees their committed rows.
    WITH settled AS (
        SELECT bucket FROM rollup_dirty
        WHERE bucket < date_bin('1 minute', upto, timestamptz 'epoch')
        GROUP BY bucket
        HAVING max(marked_at) < upto - interval '10 seconds'
            OR min(first_marked_at) < upto - interval '2 minutes'
    ), taken AS (
        DELETE FROM rollup_dirty d USING settled s WHERE d.bucket = s.bucket
        RETURNING d.bucket
    )
    SELECT array_agg(DISTINCT bucket) INTO minutes FROM taken;
    IF minutes IS NULL THEN
        RETURN 0;
    END IF;
    -- Per wide table: count, sum, min and max of each metric column by equipment, then a row per
    -- metric with readings. The columns are the catalogue's metrics the table has (a metric added
    -- later is a column added later: it is rolled up with no change here).
    SELECT array_agg(format(
        'INSERT INTO readings_1m (bucket, equipment_id, metric_id, avg, min, max, n, sum) '
        'SELECT $1, a.equipment_id, x.metric_id, x.s / x.n, x.lo, x.hi, x.n, x.s '
        'FROM (SELECT equipment_id, %s FROM %I WHERE time >= $1 AND time < $1 + interval ''1 minute'' '
        'GROUP BY equipment_id) a CROSS JOIN LATERAL (VALUES %s) AS x(metric_id, n, s, lo, hi) WHERE x.n > 0',
        aggregates, wide, per_metric))
    INTO per_table
    FROM (
        SELECT t.wide,
               string_agg(format('count(%1$I) AS n%2$s, sum(%1$I) AS s%2$s, min(%1$I) AS lo%2$s, max(%1$I) AS hi%2$s',
                                 m.key, m.id), ', ' ORDER BY m.id) AS aggregates,
               string_agg(format('(%1$s, a.n%1$s, a.s%1$s, a.lo%1$s, a.hi%1$s)', m.id), ', ' ORDER BY m.id) AS per_metric
        FROM unnest(ARRAY['boiler_readings', 'pressure_vessel_readings', 'elevator_readings']) AS t(wide)
        JOIN pg_attribute c ON c.attrelid = t.wide::regclass AND c.attnum > 0 AND NOT c.attisdropped
        JOIN metrics m ON m.key = c.attname
        GROUP BY t.wide
    ) tables;
    -- One statement per bucket: a constant bucket is what the BRIN indexes answer.
    FOREACH minute IN ARRAY minutes LOOP
        DELETE FROM readings_1m WHERE bucket = minute;
        IF FOUND THEN
            redone := redone || date_trunc('hour', minute);
        ELSE
            added := added || minute;
        END IF;
        FOR i IN 1 .. cardinality(per_table) LOOP
            EXECUTE per_table[i] USING minute;
        END LOOP;
    END LOOP;
    FOREACH hour IN ARRAY ARRAY(SELECT DISTINCT h FROM unnest(redone) AS h) LOOP
        DELETE FROM readings_1h WHERE bucket = hour;
        INSERT INTO readings_1h (bucket, equipment_id, metric_id, avg, min, max, n, sum)
        SELECT hour, m.equipment_id, m.metric_id, sum(m.sum) / sum(m.n), min(m.min), max(m.max), sum(m.n), sum(m.sum)
        FROM readings_1m m
        WHERE m.bucket >= hour AND m.bucket < hour + interval '1 hour'
        GROUP BY 2, 3;
    END LOOP;
    FOREACH minute IN ARRAY added LOOP
        IF date_trunc('hour', minute) = ANY (redone) THEN
            CONTINUE;  -- its hour was just re-aggregated, this minute with it
        END IF;
        INSERT INTO readings_1h AS h (bucket, equipment_id, metric_id, avg, min, max, n, sum)
        SELECT date_trunc('hour', minute), m.equipment_id, m.metric_id, m.sum / m.n, m.min, m.max, m.n, m.sum
        FROM readings_1m m
        WHERE m.bucket = minute
        ON CONFLICT (equipment_id, metric_id, bucket) DO UPDATE
        SET n = h.n + EXCLUDED.n, sum = h.sum + EXCLUDED.sum, min = least(h.min, EXCLUDED.min),
            max = greatest(h.max, EXCLUDED.max), avg = (h.sum + EXCLUDED.sum) / (h.n + EXCLUDED.n);
    END LOOP;
    RETURN cardinality(minutes);
END $$;
