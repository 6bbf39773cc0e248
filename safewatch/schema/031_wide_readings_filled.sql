-- Readings, wide (schema 030 made the tables): the rows of the narrow table copied over, the narrow
-- table dropped, and the narrow shape kept for readers as a view. The same on both storages.

-- Rows of the narrow table, pivoted: at most one value per metric, equipment and instant (its key).
INSERT INTO boiler_readings (time, equipment_id, drum_pressure, drum_level, steam_temp, steam_flow, feedwater_temp, feedwater_pressure, furnace_temp, furnace_pressure, flue_gas_temp, flue_gas_o2, burner_on, outlet_water_temp, return_water_temp)
SELECT time, equipment_id,
       max(value) FILTER (WHERE metric_id = 1),
       max(value) FILTER (WHERE metric_id = 2),
       max(value) FILTER (WHERE metric_id = 3),
       max(value) FILTER (WHERE metric_id = 4),
       max(value) FILTER (WHERE metric_id = 5),
       max(value) FILTER (WHERE metric_id = 6),
       max(value) FILTER (WHERE metric_id = 7),
       max(value) FILTER (WHERE metric_id = 8),
       max(value) FILTER (WHERE metric_id = 9),
       max(value) FILTER (WHERE metric_id = 10),
       max(value) FILTER (WHERE metric_id = 11),
       max(value) FILTER (WHERE metric_id = 12),
       max(value) FILTER (WHERE metric_id = 13)
FROM readings WHERE metric_id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
GROUP BY equipment_id, time;
INSERT INTO pressure_vessel_readings (time, equipment_id, vessel_pressure, vessel_temp, compressor_on)
SELECT time, equipment_id,
       max(value) FILTER (WHERE metric_id = 20),
       max(value) FILTER (WHERE metric_id = 21),
       max(value) FILTER (WHERE metric_id = 22)
FROM readings WHERE metric_id IN (20, 21, 22)
GROUP BY equipment_id, time;
INSERT INTO elevator_readings (time, equipment_id, service_mode, car_moving, direction, door_zone, floor, door_locked, passenger_present, mains_power, speed, load, run_hours, trips, door_cycles)
SELECT time, equipment_id,
       max(value) FILTER (WHERE metric_id = 40),
       max(value) FILTER (WHERE metric_id = 41),
       max(value) FILTER (WHERE metric_id = 42),
       max(value) FILTER (WHERE metric_id = 43),
       max(value) FILTER (WHERE metric_id = 44),
       max(value) FILTER (WHERE metric_id = 45),
       max(value) FILTER (WHERE metric_id = 46),
       max(value) FILTER (WHERE metric_id = 47),
       max(value) FILTER (WHERE metric_id = 48),
       max(value) FILTER (WHERE metric_id = 49),
       max(value) FILTER (WHERE metric_id = 50),
       max(value) FILTER (WHERE metric_id = 51),
       max(value) FILTER (WHERE metric_id = 52)
FROM readings WHERE metric_id IN (40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52)
GROUP BY equipment_id, time;
DROP TABLE readings;

-- The narrow shape, for readers: the chart queries, the plain rollup refresh (schema 032) and the tests.
-- A filter on equipment_id and time reaches each table's key and partitions through the UNION ALL.
CREATE VIEW readings AS
SELECT r.time, r.equipment_id, v.metric_id::smallint AS metric_id, v.value
FROM boiler_readings r CROSS JOIN LATERAL (VALUES (1, r.drum_pressure),
                                  (2, r.drum_level),
                                  (3, r.steam_temp),
                                  (4, r.steam_flow),
                                  (5, r.feedwater_temp),
                                  (6, r.feedwater_pressure),
                                  (7, r.furnace_temp),
                                  (8, r.furnace_pressure),
                                  (9, r.flue_gas_temp),
                                  (10, r.flue_gas_o2),
                                  (11, r.burner_on),
                                  (12, r.outlet_water_temp),
                                  (13, r.return_water_temp)) AS v(metric_id, value)
WHERE v.value IS NOT NULL
UNION ALL
SELECT r.time, r.equipment_id, v.metric_id::smallint AS metric_id, v.value
FROM pressure_vessel_readings r CROSS JOIN LATERAL (VALUES (20, r.vessel_pressure),
                                  (21, r.vessel_temp),
                                  (22, r.compressor_on)) AS v(metric_id, value)
WHERE v.value IS NOT NULL
UNION ALL
SELECT r.time, r.equipment_id, v.metric_id::smallint AS metric_id, v.value
FROM elevator_readings r CROSS JOIN LATERAL (VALUES (40, r.service_mode),
                                  (41, r.car_moving),
                                  (42, r.direction),
                                  (43, r.door_zone),
                                  (44, r.floor),
                                  (45, r.door_locked),
                                  (46, r.passenger_present),
                                  (47, r.mains_power),
                                  (48, r.speed),
                                  (49, r.load),
                                  (50, r.run_hours),
                                  (51, r.trips),
                                  (52, r.door_cycles)) AS v(metric_id, value)
WHERE v.value IS NOT NULL;
