-- Retention for the 1-minute rollups, as for the readings they come from: 400 days (the plain
-- variant drops daily partitions of readings_1m). The hourly rollups are kept: they are the long
-- record, and charts older than 400 days read them. The refresh policies reach back 8 days, far
-- inside this, so nothing dropped is materialised again.
SELECT add_retention_policy('boiler_readings_1m', drop_after => interval '400 days');
SELECT add_retention_policy('pressure_vessel_readings_1m', drop_after => interval '400 days');
SELECT add_retention_policy('elevator_readings_1m', drop_after => interval '400 days');
