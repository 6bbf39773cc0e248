-- Readings on TimescaleDB: columnstore (compression), retention, and the 1-minute / 1-hour rollups
-- as continuous aggregates. The plain variant has tables of the same names and columns, so chart
-- queries are the same on both (see docs/decisions/rollups.md).

-- Compress chunks once no late reading can reach them any more: the ingest accepts readings up to
-- 7 days old (SAFEWATCH_INGEST__MAX_PAST_S), so after 8 days. Segment by equipment: every chart and
-- anomaly window reads one equipment.
ALTER TABLE readings SET (timescaledb.enable_columnstore, timescaledb.segmentby = 'equipment_id',
                          timescaledb.orderby = 'metric_id, time DESC');
CALL add_columnstore_policy('readings', after => interval '8 days');

-- Raw readings are kept 400 days (a year and an inspection cycle's margin); the rollups are kept.
SELECT add_retention_policy('readings', drop_after => interval '400 days');

-- Real-time aggregation on: the not yet materialised tail is computed at query time, so a chart of
-- the last day includes the last minute.
CREATE MATERIALIZED VIEW readings_1m WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(interval '1 minute', time) AS bucket, equipment_id, metric_id,
       avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS n, sum(value) AS sum
FROM readings
GROUP BY 1, 2, 3
WITH NO DATA;

-- Hierarchical: hours from minutes, averaged by sum / count so the hourly mean is exact.
CREATE MATERIALIZED VIEW readings_1h WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(interval '1 hour', bucket) AS bucket, equipment_id, metric_id,
       sum(sum) / sum(n) AS avg, min(min) AS min, max(max) AS max, sum(n)::bigint AS n, sum(sum) AS sum
FROM readings_1m
GROUP BY 1, 2, 3
WITH NO DATA;

-- Refresh windows reach back 8 days: late readings (up to 7 days) are folded in.
SELECT add_continuous_aggregate_policy('readings_1m', start_offset => interval '8 days',
                                       end_offset => interval '1 minute', schedule_interval => interval '1 minute');
SELECT add_continuous_aggregate_policy('readings_1h', start_offset => interval '8 days',
                                       end_offset => interval '1 hour', schedule_interval => interval '10 minutes');

-- Same signatures as the plain variant: the service calls them without knowing the storage.
CREATE FUNCTION safewatch_refresh_rollups(upto timestamptz) RETURNS integer
LANGUAGE sql AS $$ SELECT 0 $$;
CREATE FUNCTION safewatch_drop_old_partitions(keep interval) RETURNS integer
LANGUAGE sql AS $$ SELECT 0 $$;
