-- Readings older than the continuous aggregates' refresh policies reach (8 days), such as dead letters
-- reprocessed weeks later, are recorded by TimescaleDB as invalidations no policy ever refreshes. This
-- job refreshes the aggregates from a day inside retention (400 days) up to where the policies start;
-- TimescaleDB materialises only the invalidated buckets there, so with nothing late it reads next to nothing.
-- The span stops short of retention: dropping a chunk past retention invalidates its span too, and
-- refreshing that would delete the hourly rollups kept for good.
--
-- A job of TimescaleDB's, so it runs as the owner of the aggregates (the processes' roles may not refresh
-- them) and is watched with the other jobs (ingest/timescale_jobs.py). `config` may carry "now" (tests).
CREATE PROCEDURE safewatch_refresh_late_rollups(job_id integer, config jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    at timestamptz := coalesce((config ->> 'now')::timestamptz, now());
    aggregate text;
BEGIN
    FOREACH aggregate IN ARRAY ARRAY['boiler_readings_1m', 'pressure_vessel_readings_1m', 'elevator_readings_1m',
                                     'boiler_readings_1h', 'pressure_vessel_readings_1h', 'elevator_readings_1h']
    LOOP
        CALL refresh_continuous_aggregate(aggregate::regclass, at - interval '399 days', at - interval '8 days');
    END LOOP;
END
$$;

SELECT add_job('safewatch_refresh_late_rollups', interval '5 minutes', config => '{}'::jsonb);
