-- Retention for the 1-minute rollups, as for the readings they come from: 400 days, dropped a day at
-- a time (the plain variant drops daily partitions of readings_1m). A continuous aggregate's chunks
-- span ten times its source's, 10 days here, and a chunk goes only once all of it is past retention:
-- daily chunks, as the readings have, for the minutes written from now on. The hourly rollups are
-- kept: they are the long record, and charts older than 400 days read them. The refresh policies
-- reach back 8 days, far inside this, so nothing dropped is materialised again.
SELECT set_chunk_time_interval('boiler_readings_1m', interval '1 day');
SELECT set_chunk_time_interval('pressure_vessel_readings_1m', interval '1 day');
SELECT set_chunk_time_interval('elevator_readings_1m', interval '1 day');
SELECT add_retention_policy('boiler_readings_1m', drop_after => interval '400 days');
SELECT add_retention_policy('pressure_vessel_readings_1m', drop_after => interval '400 days');
SELECT add_retention_policy('elevator_readings_1m', drop_after => interval '400 days');
