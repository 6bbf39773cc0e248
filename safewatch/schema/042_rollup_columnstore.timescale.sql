-- The rollups compressed by policy (issue 22): the 1-minute continuous aggregates took about 0.9 MB
-- per equipment-day uncompressed (about 430 GB a year at 1,200 equipment); one chunk compressed by
-- hand went from 42.2 to 5.9 MB. The hourly ones grow for ever (they are kept), a sixtieth as fast.
-- Segmented by equipment and ordered by bucket, as every chart reads one equipment over a span.
--
-- A chunk is compressed once the refresh policies (8 days back) have left it: 9 days. Later writes
-- into it, the late refresh of reprocessed readings (ingest/rollups.py), still work: TimescaleDB
-- decompresses what they touch.
ALTER MATERIALIZED VIEW boiler_readings_1m SET (timescaledb.enable_columnstore = true,
    timescaledb.segmentby = 'equipment_id', timescaledb.orderby = 'bucket DESC');
ALTER MATERIALIZED VIEW pressure_vessel_readings_1m SET (timescaledb.enable_columnstore = true,
    timescaledb.segmentby = 'equipment_id', timescaledb.orderby = 'bucket DESC');
ALTER MATERIALIZED VIEW elevator_readings_1m SET (timescaledb.enable_columnstore = true,
    timescaledb.segmentby = 'equipment_id', timescaledb.orderby = 'bucket DESC');
ALTER MATERIALIZED VIEW boiler_readings_1h SET (timescaledb.enable_columnstore = true,
    timescaledb.segmentby = 'equipment_id', timescaledb.orderby = 'bucket DESC');
ALTER MATERIALIZED VIEW pressure_vessel_readings_1h SET (timescaledb.enable_columnstore = true,
    timescaledb.segmentby = 'equipment_id', timescaledb.orderby = 'bucket DESC');
ALTER MATERIALIZED VIEW elevator_readings_1h SET (timescaledb.enable_columnstore = true,
    timescaledb.segmentby = 'equipment_id', timescaledb.orderby = 'bucket DESC');

CALL add_columnstore_policy('boiler_readings_1m', after => interval '9 days');
CALL add_columnstore_policy('pressure_vessel_readings_1m', after => interval '9 days');
CALL add_columnstore_policy('elevator_readings_1m', after => interval '9 days');
CALL add_columnstore_policy('boiler_readings_1h', after => interval '9 days');
CALL add_columnstore_policy('pressure_vessel_readings_1h', after => interval '9 days');
CALL add_columnstore_policy('elevator_readings_1h', after => interval '9 days');
