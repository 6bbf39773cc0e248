-- A minute's rollups are recomputed once its writers have left it, not at every refresh while they
-- are still in it. A worker catching up on a backlog (after an outage, under a burst) writes into
-- each closed minute for minutes on end; recomputing it at every refresh re-read all of its readings
-- each time, and on a 2-core machine that cost PostgreSQL more CPU than writing them (bench/ingest,
-- docs/decisions/rollups.md). A minute is refreshed when no batch has marked it for 10 seconds, or when its
-- first mark since the last refresh is 2 minutes old (late data that keeps trickling in still shows
-- within 2 minutes).

ALTER TABLE rollup_dirty ADD COLUMN first_marked_at timestamptz NOT NULL DEFAULT now();

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
