-- Rollups of the wide hypertables (schema 030): columnstore, retention, continuous aggregates, and
-- the narrow views readings_1m / readings_1h over them, with the columns of the plain variant's tables.

-- Compress chunks once no late reading can reach them any more: the ingest accepts readings up to
-- 7 days old (SAFEWATCH_INGEST__MAX_PAST_S), so after 8 days. Segment by equipment: every chart and
-- anomaly window reads one equipment. Raw readings are kept 400 days; the rollups are kept.
ALTER TABLE boiler_readings SET (timescaledb.enable_columnstore, timescaledb.segmentby = 'equipment_id',
    timescaledb.orderby = 'time DESC');
CALL add_columnstore_policy('boiler_readings', after => interval '8 days');
SELECT add_retention_policy('boiler_readings', drop_after => interval '400 days');
ALTER TABLE pressure_vessel_readings SET (timescaledb.enable_columnstore, timescaledb.segmentby = 'equipment_id',
    timescaledb.orderby = 'time DESC');
CALL add_columnstore_policy('pressure_vessel_readings', after => interval '8 days');
SELECT add_retention_policy('pressure_vessel_readings', drop_after => interval '400 days');
ALTER TABLE elevator_readings SET (timescaledb.enable_columnstore, timescaledb.segmentby = 'equipment_id',
    timescaledb.orderby = 'time DESC');
CALL add_columnstore_policy('elevator_readings', after => interval '8 days');
SELECT add_retention_policy('elevator_readings', drop_after => interval '400 days');

-- Real-time aggregation on: the not yet materialised tail is computed at query time, so a chart of
-- the last day includes the last minute. Hours come from minutes, averaged by sum / count so the
-- hourly mean is exact; a metric absent for a whole bucket has n = 0 and no row in the views below.
CREATE MATERIALIZED VIEW boiler_readings_1m WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(interval '1 minute', time) AS bucket, equipment_id,
       avg(drum_pressure) AS drum_pressure_avg, min(drum_pressure) AS drum_pressure_min, max(drum_pressure) AS drum_pressure_max, count(drum_pressure) AS drum_pressure_n, sum(drum_pressure) AS drum_pressure_sum,
       avg(drum_level) AS drum_level_avg, min(drum_level) AS drum_level_min, max(drum_level) AS drum_level_max, count(drum_level) AS drum_level_n, sum(drum_level) AS drum_level_sum,
       avg(steam_temp) AS steam_temp_avg, min(steam_temp) AS steam_temp_min, max(steam_temp) AS steam_temp_max, count(steam_temp) AS steam_temp_n, sum(steam_temp) AS steam_temp_sum,
       avg(steam_flow) AS steam_flow_avg, min(steam_flow) AS steam_flow_min, max(steam_flow) AS steam_flow_max, count(steam_flow) AS steam_flow_n, sum(steam_flow) AS steam_flow_sum,
       avg(feedwater_temp) AS feedwater_temp_avg, min(feedwater_temp) AS feedwater_temp_min, max(feedwater_temp) AS feedwater_temp_max, count(feedwater_temp) AS feedwater_temp_n, sum(feedwater_temp) AS feedwater_temp_sum,
       avg(feedwater_pressure) AS feedwater_pressure_avg, min(feedwater_pressure) AS feedwater_pressure_min, max(feedwater_pressure) AS feedwater_pressure_max, count(feedwater_pressure) AS feedwater_pressure_n, sum(feedwater_pressure) AS feedwater_pressure_sum,
       avg(furnace_temp) AS furnace_temp_avg, min(furnace_temp) AS furnace_temp_min, max(furnace_temp) AS furnace_temp_max, count(furnace_temp) AS furnace_temp_n, sum(furnace_temp) AS furnace_temp_sum,
       avg(furnace_pressure) AS furnace_pressure_avg, min(furnace_pressure) AS furnace_pressure_min, max(furnace_pressure) AS furnace_pressure_max, count(furnace_pressure) AS furnace_pressure_n, sum(furnace_pressure) AS furnace_pressure_sum,
       avg(flue_gas_temp) AS flue_gas_temp_avg, min(flue_gas_temp) AS flue_gas_temp_min, max(flue_gas_temp) AS flue_gas_temp_max, count(flue_gas_temp) AS flue_gas_temp_n, sum(flue_gas_temp) AS flue_gas_temp_sum,
       avg(flue_gas_o2) AS flue_gas_o2_avg, min(flue_gas_o2) AS flue_gas_o2_min, max(flue_gas_o2) AS flue_gas_o2_max, count(flue_gas_o2) AS flue_gas_o2_n, sum(flue_gas_o2) AS flue_gas_o2_sum,
       avg(burner_on) AS burner_on_avg, min(burner_on) AS burner_on_min, max(burner_on) AS burner_on_max, count(burner_on) AS burner_on_n, sum(burner_on) AS burner_on_sum,
       avg(outlet_water_temp) AS outlet_water_temp_avg, min(outlet_water_temp) AS outlet_water_temp_min, max(outlet_water_temp) AS outlet_water_temp_max, count(outlet_water_temp) AS outlet_water_temp_n, sum(outlet_water_temp) AS outlet_water_temp_sum,
       avg(return_water_temp) AS return_water_temp_avg, min(return_water_temp) AS return_water_temp_min, max(return_water_temp) AS return_water_temp_max, count(return_water_temp) AS return_water_temp_n, sum(return_water_temp) AS return_water_temp_sum
FROM boiler_readings
GROUP BY 1, 2
WITH NO DATA;
CREATE MATERIALIZED VIEW boiler_readings_1h WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(interval '1 hour', bucket) AS bucket, equipment_id,
       sum(drum_pressure_sum) / nullif(sum(drum_pressure_n), 0) AS drum_pressure_avg, min(drum_pressure_min) AS drum_pressure_min, max(drum_pressure_max) AS drum_pressure_max, sum(drum_pressure_n)::bigint AS drum_pressure_n, sum(drum_pressure_sum) AS drum_pressure_sum,
       sum(drum_level_sum) / nullif(sum(drum_level_n), 0) AS drum_level_avg, min(drum_level_min) AS drum_level_min, max(drum_level_max) AS drum_level_max, sum(drum_level_n)::bigint AS drum_level_n, sum(drum_level_sum) AS drum_level_sum,
       sum(steam_temp_sum) / nullif(sum(steam_temp_n), 0) AS steam_temp_avg, min(steam_temp_min) AS steam_temp_min, max(steam_temp_max) AS steam_temp_max, sum(steam_temp_n)::bigint AS steam_temp_n, sum(steam_temp_sum) AS steam_temp_sum,
       sum(steam_flow_sum) / nullif(sum(steam_flow_n), 0) AS steam_flow_avg, min(steam_flow_min) AS steam_flow_min, max(steam_flow_max) AS steam_flow_max, sum(steam_flow_n)::bigint AS steam_flow_n, sum(steam_flow_sum) AS steam_flow_sum,
       sum(feedwater_temp_sum) / nullif(sum(feedwater_temp_n), 0) AS feedwater_temp_avg, min(feedwater_temp_min) AS feedwater_temp_min, max(feedwater_temp_max) AS feedwater_temp_max, sum(feedwater_temp_n)::bigint AS feedwater_temp_n, sum(feedwater_temp_sum) AS feedwater_temp_sum,
       sum(feedwater_pressure_sum) / nullif(sum(feedwater_pressure_n), 0) AS feedwater_pressure_avg, min(feedwater_pressure_min) AS feedwater_pressure_min, max(feedwater_pressure_max) AS feedwater_pressure_max, sum(feedwater_pressure_n)::bigint AS feedwater_pressure_n, sum(feedwater_pressure_sum) AS feedwater_pressure_sum,
       sum(furnace_temp_sum) / nullif(sum(furnace_temp_n), 0) AS furnace_temp_avg, min(furnace_temp_min) AS furnace_temp_min, max(furnace_temp_max) AS furnace_temp_max, sum(furnace_temp_n)::bigint AS furnace_temp_n, sum(furnace_temp_sum) AS furnace_temp_sum,
       sum(furnace_pressure_sum) / nullif(sum(furnace_pressure_n), 0) AS furnace_pressure_avg, min(furnace_pressure_min) AS furnace_pressure_min, max(furnace_pressure_max) AS furnace_pressure_max, sum(furnace_pressure_n)::bigint AS furnace_pressure_n, sum(furnace_pressure_sum) AS furnace_pressure_sum,
       sum(flue_gas_temp_sum) / nullif(sum(flue_gas_temp_n), 0) AS flue_gas_temp_avg, min(flue_gas_temp_min) AS flue_gas_temp_min, max(flue_gas_temp_max) AS flue_gas_temp_max, sum(flue_gas_temp_n)::bigint AS flue_gas_temp_n, sum(flue_gas_temp_sum) AS flue_gas_temp_sum,
       sum(flue_gas_o2_sum) / nullif(sum(flue_gas_o2_n), 0) AS flue_gas_o2_avg, min(flue_gas_o2_min) AS flue_gas_o2_min, max(flue_gas_o2_max) AS flue_gas_o2_max, sum(flue_gas_o2_n)::bigint AS flue_gas_o2_n, sum(flue_gas_o2_sum) AS flue_gas_o2_sum,
       sum(burner_on_sum) / nullif(sum(burner_on_n), 0) AS burner_on_avg, min(burner_on_min) AS burner_on_min, max(burner_on_max) AS burner_on_max, sum(burner_on_n)::bigint AS burner_on_n, sum(burner_on_sum) AS burner_on_sum,
       sum(outlet_water_temp_sum) / nullif(sum(outlet_water_temp_n), 0) AS outlet_water_temp_avg, min(outlet_water_temp_min) AS outlet_water_temp_min, max(outlet_water_temp_max) AS outlet_water_temp_max, sum(outlet_water_temp_n)::bigint AS outlet_water_temp_n, sum(outlet_water_temp_sum) AS outlet_water_temp_sum,
       sum(return_water_temp_sum) / nullif(sum(return_water_temp_n), 0) AS return_water_temp_avg, min(return_water_temp_min) AS return_water_temp_min, max(return_water_temp_max) AS return_water_temp_max, sum(return_water_temp_n)::bigint AS return_water_temp_n, sum(return_water_temp_sum) AS return_water_temp_sum
FROM boiler_readings_1m
GROUP BY 1, 2
WITH NO DATA;
SELECT add_continuous_aggregate_policy('boiler_readings_1m', start_offset => interval '8 days',
                                       end_offset => interval '1 minute', schedule_interval => interval '1 minute');
SELECT add_continuous_aggregate_policy('boiler_readings_1h', start_offset => interval '8 days',
                                       end_offset => interval '1 hour', schedule_interval => interval '10 minutes');
CREATE MATERIALIZED VIEW pressure_vessel_readings_1m WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(interval '1 minute', time) AS bucket, equipment_id,
       avg(vessel_pressure) AS vessel_pressure_avg, min(vessel_pressure) AS vessel_pressure_min, max(vessel_pressure) AS vessel_pressure_max, count(vessel_pressure) AS vessel_pressure_n, sum(vessel_pressure) AS vessel_pressure_sum,
       avg(vessel_temp) AS vessel_temp_avg, min(vessel_temp) AS vessel_temp_min, max(vessel_temp) AS vessel_temp_max, count(vessel_temp) AS vessel_temp_n, sum(vessel_temp) AS vessel_temp_sum,
       avg(compressor_on) AS compressor_on_avg, min(compressor_on) AS compressor_on_min, max(compressor_on) AS compressor_on_max, count(compressor_on) AS compressor_on_n, sum(compressor_on) AS compressor_on_sum
FROM pressure_vessel_readings
GROUP BY 1, 2
WITH NO DATA;
CREATE MATERIALIZED VIEW pressure_vessel_readings_1h WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(interval '1 hour', bucket) AS bucket, equipment_id,
       sum(vessel_pressure_sum) / nullif(sum(vessel_pressure_n), 0) AS vessel_pressure_avg, min(vessel_pressure_min) AS vessel_pressure_min, max(vessel_pressure_max) AS vessel_pressure_max, sum(vessel_pressure_n)::bigint AS vessel_pressure_n, sum(vessel_pressure_sum) AS vessel_pressure_sum,
       sum(vessel_temp_sum) / nullif(sum(vessel_temp_n), 0) AS vessel_temp_avg, min(vessel_temp_min) AS vessel_temp_min, max(vessel_temp_max) AS vessel_temp_max, sum(vessel_temp_n)::bigint AS vessel_temp_n, sum(vessel_temp_sum) AS vessel_temp_sum,
       sum(compressor_on_sum) / nullif(sum(compressor_on_n), 0) AS compressor_on_avg, min(compressor_on_min) AS compressor_on_min, max(compressor_on_max) AS compressor_on_max, sum(compressor_on_n)::bigint AS compressor_on_n, sum(compressor_on_sum) AS compressor_on_sum
FROM pressure_vessel_readings_1m
GROUP BY 1, 2
WITH NO DATA;
SELECT add_continuous_aggregate_policy('pressure_vessel_readings_1m', start_offset => interval '8 days',
                                       end_offset => interval '1 minute', schedule_interval => interval '1 minute');
SELECT add_continuous_aggregate_policy('pressure_vessel_readings_1h', start_offset => interval '8 days',
                                       end_offset => interval '1 hour', schedule_interval => interval '10 minutes');
CREATE MATERIALIZED VIEW elevator_readings_1m WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(interval '1 minute', time) AS bucket, equipment_id,
       avg(service_mode) AS service_mode_avg, min(service_mode) AS service_mode_min, max(service_mode) AS service_mode_max, count(service_mode) AS service_mode_n, sum(service_mode) AS service_mode_sum,
       avg(car_moving) AS car_moving_avg, min(car_moving) AS car_moving_min, max(car_moving) AS car_moving_max, count(car_moving) AS car_moving_n, sum(car_moving) AS car_moving_sum,
       avg(direction) AS direction_avg, min(direction) AS direction_min, max(direction) AS direction_max, count(direction) AS direction_n, sum(direction) AS direction_sum,
       avg(door_zone) AS door_zone_avg, min(door_zone) AS door_zone_min, max(door_zone) AS door_zone_max, count(door_zone) AS door_zone_n, sum(door_zone) AS door_zone_sum,
       avg(floor) AS floor_avg, min(floor) AS floor_min, max(floor) AS floor_max, count(floor) AS floor_n, sum(floor) AS floor_sum,
       avg(door_locked) AS door_locked_avg, min(door_locked) AS door_locked_min, max(door_locked) AS door_locked_max, count(door_locked) AS door_locked_n, sum(door_locked) AS door_locked_sum,
       avg(passenger_present) AS passenger_present_avg, min(passenger_present) AS passenger_present_min, max(passenger_present) AS passenger_present_max, count(passenger_present) AS passenger_present_n, sum(passenger_present) AS passenger_present_sum,
       avg(mains_power) AS mains_power_avg, min(mains_power) AS mains_power_min, max(mains_power) AS mains_power_max, count(mains_power) AS mains_power_n, sum(mains_power) AS mains_power_sum,
       avg(speed) AS speed_avg, min(speed) AS speed_min, max(speed) AS speed_max, count(speed) AS speed_n, sum(speed) AS speed_sum,
       avg(load) AS load_avg, min(load) AS load_min, max(load) AS load_max, count(load) AS load_n, sum(load) AS load_sum,
       avg(run_hours) AS run_hours_avg, min(run_hours) AS run_hours_min, max(run_hours) AS run_hours_max, count(run_hours) AS run_hours_n, sum(run_hours) AS run_hours_sum,
       avg(trips) AS trips_avg, min(trips) AS trips_min, max(trips) AS trips_max, count(trips) AS trips_n, sum(trips) AS trips_sum,
       avg(door_cycles) AS door_cycles_avg, min(door_cycles) AS door_cycles_min, max(door_cycles) AS door_cycles_max, count(door_cycles) AS door_cycles_n, sum(door_cycles) AS door_cycles_sum
FROM elevator_readings
GROUP BY 1, 2
WITH NO DATA;
CREATE MATERIALIZED VIEW elevator_readings_1h WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(interval '1 hour', bucket) AS bucket, equipment_id,
       sum(service_mode_sum) / nullif(sum(service_mode_n), 0) AS service_mode_avg, min(service_mode_min) AS service_mode_min, max(service_mode_max) AS service_mode_max, sum(service_mode_n)::bigint AS service_mode_n, sum(service_mode_sum) AS service_mode_sum,
       sum(car_moving_sum) / nullif(sum(car_moving_n), 0) AS car_moving_avg, min(car_moving_min) AS car_moving_min, max(car_moving_max) AS car_moving_max, sum(car_moving_n)::bigint AS car_moving_n, sum(car_moving_sum) AS car_moving_sum,
       sum(direction_sum) / nullif(sum(direction_n), 0) AS direction_avg, min(direction_min) AS direction_min, max(direction_max) AS direction_max, sum(direction_n)::bigint AS direction_n, sum(direction_sum) AS direction_sum,
       sum(door_zone_sum) / nullif(sum(door_zone_n), 0) AS door_zone_avg, min(door_zone_min) AS door_zone_min, max(door_zone_max) AS door_zone_max, sum(door_zone_n)::bigint AS door_zone_n, sum(door_zone_sum) AS door_zone_sum,
       sum(floor_sum) / nullif(sum(floor_n), 0) AS floor_avg, min(floor_min) AS floor_min, max(floor_max) AS floor_max, sum(floor_n)::bigint AS floor_n, sum(floor_sum) AS floor_sum,
       sum(door_locked_sum) / nullif(sum(door_locked_n), 0) AS door_locked_avg, min(door_locked_min) AS door_locked_min, max(door_locked_max) AS door_locked_max, sum(door_locked_n)::bigint AS door_locked_n, sum(door_locked_sum) AS door_locked_sum,
       sum(passenger_present_sum) / nullif(sum(passenger_present_n), 0) AS passenger_present_avg, min(passenger_present_min) AS passenger_present_min, max(passenger_present_max) AS passenger_present_max, sum(passenger_present_n)::bigint AS passenger_present_n, sum(passenger_present_sum) AS passenger_present_sum,
       sum(mains_power_sum) / nullif(sum(mains_power_n), 0) AS mains_power_avg, min(mains_power_min) AS mains_power_min, max(mains_power_max) AS mains_power_max, sum(mains_power_n)::bigint AS mains_power_n, sum(mains_power_sum) AS mains_power_sum,
       sum(speed_sum) / nullif(sum(speed_n), 0) AS speed_avg, min(speed_min) AS speed_min, max(speed_max) AS speed_max, sum(speed_n)::bigint AS speed_n, sum(speed_sum) AS speed_sum,
       sum(load_sum) / nullif(sum(load_n), 0) AS load_avg, min(load_min) AS load_min, max(load_max) AS load_max, sum(load_n)::bigint AS load_n, sum(load_sum) AS load_sum,
       sum(run_hours_sum) / nullif(sum(run_hours_n), 0) AS run_hours_avg, min(run_hours_min) AS run_hours_min, max(run_hours_max) AS run_hours_max, sum(run_hours_n)::bigint AS run_hours_n, sum(run_hours_sum) AS run_hours_sum,
       sum(trips_sum) / nullif(sum(trips_n), 0) AS trips_avg, min(trips_min) AS trips_min, max(trips_max) AS trips_max, sum(trips_n)::bigint AS trips_n, sum(trips_sum) AS trips_sum,
       sum(door_cycles_sum) / nullif(sum(door_cycles_n), 0) AS door_cycles_avg, min(door_cycles_min) AS door_cycles_min, max(door_cycles_max) AS door_cycles_max, sum(door_cycles_n)::bigint AS door_cycles_n, sum(door_cycles_sum) AS door_cycles_sum
FROM elevator_readings_1m
GROUP BY 1, 2
WITH NO DATA;
SELECT add_continuous_aggregate_policy('elevator_readings_1m', start_offset => interval '8 days',
                                       end_offset => interval '1 minute', schedule_interval => interval '1 minute');
SELECT add_continuous_aggregate_policy('elevator_readings_1h', start_offset => interval '8 days',
                                       end_offset => interval '1 hour', schedule_interval => interval '10 minutes');

-- The narrow shapes of the rollups, for readers: the same columns as the plain variant's tables.
CREATE VIEW readings_1m AS
SELECT r.bucket, r.equipment_id, v.metric_id::smallint AS metric_id, v.avg, v.min, v.max, v.n, v.sum
FROM boiler_readings_1m r CROSS JOIN LATERAL (VALUES
        (1, r.drum_pressure_avg, r.drum_pressure_min, r.drum_pressure_max, r.drum_pressure_n, r.drum_pressure_sum),
        (2, r.drum_level_avg, r.drum_level_min, r.drum_level_max, r.drum_level_n, r.drum_level_sum),
        (3, r.steam_temp_avg, r.steam_temp_min, r.steam_temp_max, r.steam_temp_n, r.steam_temp_sum),
        (4, r.steam_flow_avg, r.steam_flow_min, r.steam_flow_max, r.steam_flow_n, r.steam_flow_sum),
        (5, r.feedwater_temp_avg, r.feedwater_temp_min, r.feedwater_temp_max, r.feedwater_temp_n, r.feedwater_temp_sum),
        (6, r.feedwater_pressure_avg, r.feedwater_pressure_min, r.feedwater_pressure_max, r.feedwater_pressure_n, r.feedwater_pressure_sum),
        (7, r.furnace_temp_avg, r.furnace_temp_min, r.furnace_temp_max, r.furnace_temp_n, r.furnace_temp_sum),
        (8, r.furnace_pressure_avg, r.furnace_pressure_min, r.furnace_pressure_max, r.furnace_pressure_n, r.furnace_pressure_sum),
        (9, r.flue_gas_temp_avg, r.flue_gas_temp_min, r.flue_gas_temp_max, r.flue_gas_temp_n, r.flue_gas_temp_sum),
        (10, r.flue_gas_o2_avg, r.flue_gas_o2_min, r.flue_gas_o2_max, r.flue_gas_o2_n, r.flue_gas_o2_sum),
        (11, r.burner_on_avg, r.burner_on_min, r.burner_on_max, r.burner_on_n, r.burner_on_sum),
        (12, r.outlet_water_temp_avg, r.outlet_water_temp_min, r.outlet_water_temp_max, r.outlet_water_temp_n, r.outlet_water_temp_sum),
        (13, r.return_water_temp_avg, r.return_water_temp_min, r.return_water_temp_max, r.return_water_temp_n, r.return_water_temp_sum)) AS v(metric_id, avg, min, max, n, sum)
WHERE v.n > 0
UNION ALL
SELECT r.bucket, r.equipment_id, v.metric_id::smallint AS metric_id, v.avg, v.min, v.max, v.n, v.sum
FROM pressure_vessel_readings_1m r CROSS JOIN LATERAL (VALUES
        (20, r.vessel_pressure_avg, r.vessel_pressure_min, r.vessel_pressure_max, r.vessel_pressure_n, r.vessel_pressure_sum),
        (21, r.vessel_temp_avg, r.vessel_temp_min, r.vessel_temp_max, r.vessel_temp_n, r.vessel_temp_sum),
        (22, r.compressor_on_avg, r.compressor_on_min, r.compressor_on_max, r.compressor_on_n, r.compressor_on_sum)) AS v(metric_id, avg, min, max, n, sum)
WHERE v.n > 0
UNION ALL
SELECT r.bucket, r.equipment_id, v.metric_id::smallint AS metric_id, v.avg, v.min, v.max, v.n, v.sum
FROM elevator_readings_1m r CROSS JOIN LATERAL (VALUES
        (40, r.service_mode_avg, r.service_mode_min, r.service_mode_max, r.service_mode_n, r.service_mode_sum),
        (41, r.car_moving_avg, r.car_moving_min, r.car_moving_max, r.car_moving_n, r.car_moving_sum),
        (42, r.direction_avg, r.direction_min, r.direction_max, r.direction_n, r.direction_sum),
        (43, r.door_zone_avg, r.door_zone_min, r.door_zone_max, r.door_zone_n, r.door_zone_sum),
        (44, r.floor_avg, r.floor_min, r.floor_max, r.floor_n, r.floor_sum),
        (45, r.door_locked_avg, r.door_locked_min, r.door_locked_max, r.door_locked_n, r.door_locked_sum),
        (46, r.passenger_present_avg, r.passenger_present_min, r.passenger_present_max, r.passenger_present_n, r.passenger_present_sum),
        (47, r.mains_power_avg, r.mains_power_min, r.mains_power_max, r.mains_power_n, r.mains_power_sum),
        (48, r.speed_avg, r.speed_min, r.speed_max, r.speed_n, r.speed_sum),
        (49, r.load_avg, r.load_min, r.load_max, r.load_n, r.load_sum),
        (50, r.run_hours_avg, r.run_hours_min, r.run_hours_max, r.run_hours_n, r.run_hours_sum),
        (51, r.trips_avg, r.trips_min, r.trips_max, r.trips_n, r.trips_sum),
        (52, r.door_cycles_avg, r.door_cycles_min, r.door_cycles_max, r.door_cycles_n, r.door_cycles_sum)) AS v(metric_id, avg, min, max, n, sum)
WHERE v.n > 0;
CREATE VIEW readings_1h AS
SELECT r.bucket, r.equipment_id, v.metric_id::smallint AS metric_id, v.avg, v.min, v.max, v.n, v.sum
FROM boiler_readings_1h r CROSS JOIN LATERAL (VALUES
        (1, r.drum_pressure_avg, r.drum_pressure_min, r.drum_pressure_max, r.drum_pressure_n, r.drum_pressure_sum),
        (2, r.drum_level_avg, r.drum_level_min, r.drum_level_max, r.drum_level_n, r.drum_level_sum),
        (3, r.steam_temp_avg, r.steam_temp_min, r.steam_temp_max, r.steam_temp_n, r.steam_temp_sum),
        (4, r.steam_flow_avg, r.steam_flow_min, r.steam_flow_max, r.steam_flow_n, r.steam_flow_sum),
        (5, r.feedwater_temp_avg, r.feedwater_temp_min, r.feedwater_temp_max, r.feedwater_temp_n, r.feedwater_temp_sum),
        (6, r.feedwater_pressure_avg, r.feedwater_pressure_min, r.feedwater_pressure_max, r.feedwater_pressure_n, r.feedwater_pressure_sum),
        (7, r.furnace_temp_avg, r.furnace_temp_min, r.furnace_temp_max, r.furnace_temp_n, r.furnace_temp_sum),
        (8, r.furnace_pressure_avg, r.furnace_pressure_min, r.furnace_pressure_max, r.furnace_pressure_n, r.furnace_pressure_sum),
        (9, r.flue_gas_temp_avg, r.flue_gas_temp_min, r.flue_gas_temp_max, r.flue_gas_temp_n, r.flue_gas_temp_sum),
        (10, r.flue_gas_o2_avg, r.flue_gas_o2_min, r.flue_gas_o2_max, r.flue_gas_o2_n, r.flue_gas_o2_sum),
        (11, r.burner_on_avg, r.burner_on_min, r.burner_on_max, r.burner_on_n, r.burner_on_sum),
        (12, r.outlet_water_temp_avg, r.outlet_water_temp_min, r.outlet_water_temp_max, r.outlet_water_temp_n, r.outlet_water_temp_sum),
        (13, r.return_water_temp_avg, r.return_water_temp_min, r.return_water_temp_max, r.return_water_temp_n, r.return_water_temp_sum)) AS v(metric_id, avg, min, max, n, sum)
WHERE v.n > 0
UNION ALL
SELECT r.bucket, r.equipment_id, v.metric_id::smallint AS metric_id, v.avg, v.min, v.max, v.n, v.sum
FROM pressure_vessel_readings_1h r CROSS JOIN LATERAL (VALUES
        (20, r.vessel_pressure_avg, r.vessel_pressure_min, r.vessel_pressure_max, r.vessel_pressure_n, r.vessel_pressure_sum),
        (21, r.vessel_temp_avg, r.vessel_temp_min, r.vessel_temp_max, r.vessel_temp_n, r.vessel_temp_sum),
        (22, r.compressor_on_avg, r.compressor_on_min, r.compressor_on_max, r.compressor_on_n, r.compressor_on_sum)) AS v(metric_id, avg, min, max, n, sum)
WHERE v.n > 0
UNION ALL
SELECT r.bucket, r.equipment_id, v.metric_id::smallint AS metric_id, v.avg, v.min, v.max, v.n, v.sum
FROM elevator_readings_1h r CROSS JOIN LATERAL (VALUES
        (40, r.service_mode_avg, r.service_mode_min, r.service_mode_max, r.service_mode_n, r.service_mode_sum),
        (41, r.car_moving_avg, r.car_moving_min, r.car_moving_max, r.car_moving_n, r.car_moving_sum),
        (42, r.direction_avg, r.direction_min, r.direction_max, r.direction_n, r.direction_sum),
        (43, r.door_zone_avg, r.door_zone_min, r.door_zone_max, r.door_zone_n, r.door_zone_sum),
        (44, r.floor_avg, r.floor_min, r.floor_max, r.floor_n, r.floor_sum),
        (45, r.door_locked_avg, r.door_locked_min, r.door_locked_max, r.door_locked_n, r.door_locked_sum),
        (46, r.passenger_present_avg, r.passenger_present_min, r.passenger_present_max, r.passenger_present_n, r.passenger_present_sum),
        (47, r.mains_power_avg, r.mains_power_min, r.mains_power_max, r.mains_power_n, r.mains_power_sum),
        (48, r.speed_avg, r.speed_min, r.speed_max, r.speed_n, r.speed_sum),
        (49, r.load_avg, r.load_min, r.load_max, r.load_n, r.load_sum),
        (50, r.run_hours_avg, r.run_hours_min, r.run_hours_max, r.run_hours_n, r.run_hours_sum),
        (51, r.trips_avg, r.trips_min, r.trips_max, r.trips_n, r.trips_sum),
        (52, r.door_cycles_avg, r.door_cycles_min, r.door_cycles_max, r.door_cycles_n, r.door_cycles_sum)) AS v(metric_id, avg, min, max, n, sum)
WHERE v.n > 0;
