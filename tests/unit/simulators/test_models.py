"""Each model's faults produce the physical signature they should, and the protections act (pure, simulated clock)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from safewatch.contract import EVENTS_BY_TYPE, METRICS_BY_KEY, Category, metrics_of
from simulators.faults import FAULT_KINDS, Fault
from simulators.profiles import (
    BoilerModel,
    DeviceEvent,
    ElevatorModel,
    HotWaterBoilerModel,
    VesselModel,
    saturation_temp,
    steam_safety_valves,
)

T0 = 1_764_057_600.0  # 2025-11-25 08:00 Beijing time
BOILER = {"rated_pressure": 1.25, "rated_evaporation": 4.0}
VESSEL = {"design_pressure": 0.8, "safety_valve_set": 0.776, "volume": 1.0}
LIFT = {"rated_speed": 1.75, "floors": 12.0, "rated_load": 1000.0}


def simulate(model, faults: Callable[[float], set[str] | dict[str, Fault]], seconds: float, dt: float = 10.0):
    """Samples (t since T0, readings) and the events raised, over ``seconds`` of simulated time."""
    samples, events = [], []
    for i in range(int(seconds / dt) + 1):
        t = T0 + i * dt
        samples.append((t - T0, dict(model.step(t, dt, faults(t - T0)))))
        events += [e._replace(ts_ms=int(e.ts_ms - T0 * 1000)) for e in model.take_events()]
    return samples, events


def during(start: float, end: float, *kinds: str) -> Callable[[float], set[str]]:
    return lambda s: set(kinds) if start <= s < end else set()


def raised(events: list[DeviceEvent], kind: str) -> list[DeviceEvent]:
    return [e for e in events if e.type == kind and e.active]


def test_readings_are_the_catalogue_metrics_in_range_and_events_are_catalogued():
    for cls, rated, category in ((BoilerModel, BOILER, Category.BOILER),
                                 (VesselModel, VESSEL, Category.PRESSURE_VESSEL),
                                 (ElevatorModel, LIFT, Category.ELEVATOR)):
        samples, events = simulate(cls(rated, random.Random(1)), lambda s: set(), 3600)
        keys = {m.key for m in metrics_of(category)}
        for _, values in samples:
            assert set(values) == set(cls.metrics) <= keys
            for key, value in values.items():
                assert METRICS_BY_KEY[key].lo <= value <= METRICS_BY_KEY[key].hi, (key, value)
        assert not events, f"{cls.__name__} raised {events} without any fault"
    for kind in FAULT_KINDS.values():
        assert all(e in EVENTS_BY_TYPE for e in kind.events)


def test_tsg11_safety_valve_set_pressures():
    assert steam_safety_valves(1.25) == pytest.approx((1.30, 1.325))
    assert steam_safety_valves(0.7) == pytest.approx((0.73, 0.75))
    assert steam_safety_valves(9.8) == pytest.approx((10.29, 10.584))
    assert saturation_temp(1.25) == pytest.approx(193.3, abs=1.0)  # steam tables: 1.35 MPa abs


def test_boiler_runs_normally_inside_its_band():
    samples, _ = simulate(BoilerModel(BOILER, random.Random(2)), lambda s: set(), 6 * 3600)
    pressures = [v["drum_pressure"] for _, v in samples[30:]]
    levels = [v["drum_level"] for _, v in samples[30:]]
    assert min(pressures) > 0.7 and max(pressures) < 1.15  # DOMAIN: normal 0.7-1.15 MPa for a 1.25 MPa boiler
    assert max(abs(x) for x in levels) < 25  # within ±25 mm of the normal water line
    assert all(150 <= v["flue_gas_temp"] <= 220 and 2 <= v["flue_gas_o2"] <= 6 for _, v in samples[30:])


def test_feed_pump_failure_lowers_the_level_until_the_low_water_cutoff_stops_the_burner():
    samples, events = simulate(BoilerModel(BOILER, random.Random(3)), during(600, 1800, "feed_pump_failure"), 3600)
    cutoff = raised(events, "low_water_cutoff")
    assert len(cutoff) == 1 and 600_000 < cutoff[0].ts_ms < 1_200_000
    at = cutoff[0].ts_ms / 1000
    before = [v for s, v in samples if 600 < s < at]
    assert before[-1]["drum_level"] < -75 and before[0]["drum_level"] > -25  # the level fell
    assert all(v["feedwater_pressure"] < 0.1 for v in before)  # the pump delivers nothing
    assert all(v["burner_on"] == 0.0 for s, v in samples if at < s < 1800)  # the cut-off holds the burner off
    # The pump comes back, the level recovers, an operator resets the cut-off and the burner relights.
    assert [e.active for e in events if e.type == "low_water_cutoff"] == [True, False]
    assert samples[-1][1]["burner_on"] == 1.0 and abs(samples[-1][1]["drum_level"]) < 25


def test_stuck_controller_with_bypassed_interlock_lifts_the_safety_valve_at_its_set_pressure():
    samples, events = simulate(BoilerModel(BOILER, random.Random(4)), during(300, 900, "overpressure"), 1500, dt=1.0)
    lifts = raised(events, "safety_valve_lift")
    assert lifts and lifts[0].ts_ms > 300_000
    assert lifts[0].details["set_pressure"] == pytest.approx(1.30)
    peak = max(v["drum_pressure"] for s, v in samples if 300 <= s < 900)
    assert 1.29 < peak < 1.36  # held near the valve's set pressure, not beyond the higher valve
    assert max(v["drum_pressure"] for s, v in samples if s < 300) < 1.15
    assert not raised([e for e in events if e.ts_ms < 900_000], "overpressure_interlock")  # it was bypassed


def test_stuck_controller_trips_the_overpressure_interlock_below_the_safety_valve():
    samples, events = simulate(BoilerModel(BOILER, random.Random(5)), during(300, 1500, "pressure_controller_stuck"),
                               1500, dt=2.0)
    trips = raised(events, "overpressure_interlock")
    assert trips and trips[0].details["set_pressure"] < 1.30
    assert max(v["drum_pressure"] for _, v in samples) < 1.31  # the valve at most cracks open
    after_trip = [v for s, v in samples if trips[0].ts_ms / 1000 + 4 < s < trips[0].ts_ms / 1000 + 60]
    assert all(v["burner_on"] == 0.0 and v["flue_gas_o2"] > 15 for v in after_trip)


def test_fouling_raises_the_flue_gas_temperature_slowly():
    faults = {"fouling": Fault("x", "fouling", int((T0 + 3600) * 1000), int((T0 + 4 * 3600) * 1000), magnitude=30.0)}
    samples, events = simulate(BoilerModel(BOILER, random.Random(6)), lambda s: faults, 4 * 3600)

    def mean_flue(a: float, b: float) -> float:
        xs = [v["flue_gas_temp"] - 60 * 0 for s, v in samples if a <= s < b]
        return sum(xs) / len(xs)

    rise = mean_flue(3 * 3600 + 1800, 4 * 3600) - mean_flue(1800, 3600)
    assert 60 < rise < 110  # ≈ 30 °C/h for three hours, load changes aside
    assert not events


def test_sensor_faults_drift_freeze_and_spike_the_named_reading_only():
    start, end = int((T0 + 600) * 1000), int((T0 + 4200) * 1000)
    for kind, check in (
        ("sensor_drift", lambda xs, ref: xs[-1] - ref > 0.08),  # 0.1 MPa/h for an hour
        ("sensor_stuck", lambda xs, ref: len(set(xs)) == 1),
        ("sensor_spikes", lambda xs, ref: max(abs(x - ref) for x in xs) > 0.3),
    ):
        faults = {kind: Fault("x", kind, start, end, metric="drum_pressure", magnitude=0.1 if kind == "sensor_drift"
                              else 0.5)}
        def injected(_s: float, f: dict[str, Fault] = faults) -> dict[str, Fault]:
            return f

        faulty, _ = simulate(BoilerModel(BOILER, random.Random(7)), injected, 4200)
        clean, _ = simulate(BoilerModel(BOILER, random.Random(7)), lambda s: set(), 4200)
        xs = [v["drum_pressure"] for s, v in faulty if 600 <= s < 4200]
        assert check(xs, clean[61][1]["drum_pressure"]), kind
        assert [v["drum_level"] for _, v in faulty] == [v["drum_level"] for _, v in clean]  # other sensors untouched


def test_vessel_compressor_cycles_between_load_and_unload_pressures():
    samples, _ = simulate(VesselModel(VESSEL, random.Random(8)), lambda s: set(), 3600, dt=2.0)
    pressures = [v["vessel_pressure"] for _, v in samples]
    assert min(pressures) > 0.57 and max(pressures) < 0.72  # load 0.6, unload 0.7 MPa
    switches = sum(1 for a, b in itertools.pairwise(samples) if a[1]["compressor_on"] != b[1]["compressor_on"])
    assert switches > 20
    assert all(20 <= v["vessel_temp"] < 60 for _, v in samples)


def test_vessel_leak_makes_the_pressure_decay_faster_and_the_compressor_run_longer():
    def unloaded_decay_and_duty(faults):
        samples, _ = simulate(VesselModel(VESSEL, random.Random(9)), faults, 3600, dt=2.0)
        drops = [a[1]["vessel_pressure"] - b[1]["vessel_pressure"] for a, b in itertools.pairwise(samples)
                 if a[1]["compressor_on"] == b[1]["compressor_on"] == 0.0]
        return sum(drops) / len(drops), sum(v["compressor_on"] for _, v in samples) / len(samples)

    decay, duty = unloaded_decay_and_duty(lambda s: set())
    leaky_decay, leaky_duty = unloaded_decay_and_duty(lambda s: {"leak"})
    assert leaky_decay > 1.3 * decay and leaky_duty > duty + 0.1


def test_vessel_overpressure_lifts_the_valve_and_a_failed_valve_lets_it_pass_design():
    samples, events = simulate(VesselModel(VESSEL, random.Random(10)), during(600, 1200, "overpressure"), 1800, dt=2.0)
    assert raised(events, "vessel_safety_valve_lift") and not raised(events, "vessel_overpressure")
    assert max(v["vessel_pressure"] for _, v in samples) < 0.8
    samples, events = simulate(VesselModel(VESSEL, random.Random(10)),
                               during(600, 1200, "overpressure", "safety_valve_failed"), 1800, dt=2.0)
    assert raised(events, "vessel_overpressure") and max(v["vessel_pressure"] for _, v in samples) > 0.85


def test_vessel_temperature_excursion():
    samples, _ = simulate(VesselModel(VESSEL, random.Random(11)), during(600, 3600, "temperature_excursion"), 3600)
    assert max(v["vessel_temp"] for s, v in samples if s < 600) < 50
    assert max(v["vessel_temp"] for s, v in samples if s > 2400) > 65


def test_elevator_trips_follow_a_speed_profile_with_doors_locked():
    samples, _ = simulate(ElevatorModel(LIFT, random.Random(12)), lambda s: set(), 4 * 3600, dt=1.0)
    moving = [v for _, v in samples if v["car_moving"]]
    assert len(moving) > 500
    assert all(v["door_locked"] == 1.0 and v["direction"] in (1.0, 2.0) for v in moving)
    assert max(v["speed"] for v in moving) == pytest.approx(1.75, abs=0.05)
    assert any(v["speed"] < 1.0 for v in moving)  # accelerating or levelling
    stopped = [v for _, v in samples if not v["car_moving"]]
    assert all(v["door_zone"] == 1.0 for v in stopped)  # it only ever stops at landings
    assert samples[-1][1]["trips"] > samples[0][1]["trips"] + 50


@pytest.mark.parametrize(("kind", "expected"), [
    ("passenger_trapped", {"passenger_trapped": "11", "stopped_outside_door_zone": "04"}),
    ("safety_circuit_open", {"safety_circuit_open": "01", "passenger_trapped": "11"}),
    ("unintended_car_movement", {"unintended_car_movement": "05", "stopped_outside_door_zone": "04"}),
    ("stopped_outside_door_zone", {"stopped_outside_door_zone": "04"}),
    ("overshoot_top", {"overshoot_top": "09"}),
    ("overshoot_bottom", {"overshoot_bottom": "10"}),
    ("overspeed", {"overspeed": None, "safety_circuit_open": "01"}),
    ("door_open_fault", {"door_open_fault": "03", "passenger_trapped": "11"}),
    ("door_close_fault", {"door_close_fault": "02"}),
    ("power_failure", {}),  # an empty car traps no one: the telemetry shows it (below)
])
def test_elevator_faults_raise_their_gbt24476_events_and_clear_after_repair(kind, expected):
    samples, events = simulate(ElevatorModel(LIFT, random.Random(13)), during(600, 2400, kind), 3600)
    for event_type, code in expected.items():
        up = raised(events, event_type)
        assert up, f"{kind} raised no {event_type}: {events}"
        assert up[0].ts_ms >= 600_000 and up[0].details.get("code") == code
    assert {e.type for e in events} <= set(FAULT_KINDS[kind].events) | set(expected) | {"passenger_trapped",
                                                                                          "stopped_outside_door_zone"}
    for event_type in {e.type for e in events}:
        assert [e.active for e in events if e.type == event_type][-1] is False  # cleared once repaired
    assert samples[-1][1]["service_mode"] == 1.0


def test_elevator_signatures_in_the_telemetry():
    samples, _ = simulate(ElevatorModel(LIFT, random.Random(14)), during(600, 2400, "unintended_car_movement"), 3600)
    held = [v for s, v in samples if 1200 < s < 2400]
    assert all(v["door_locked"] == 0.0 and v["door_zone"] == 0.0 and v["service_mode"] == 0.0 for v in held)
    samples, _ = simulate(ElevatorModel(LIFT, random.Random(14)), during(600, 2400, "overshoot_top"), 3600)
    assert max(v["floor"] for _, v in samples) > 12.1  # above the top landing
    samples, _ = simulate(ElevatorModel(LIFT, random.Random(14)), during(600, 2400, "power_failure"), 3600)
    assert all(v["mains_power"] == 0.0 for s, v in samples if 610 <= s < 2400)


def test_a_fault_never_acts_before_it_starts():
    for kind in ("passenger_trapped", "overspeed", "overshoot_bottom"):
        _, events = simulate(ElevatorModel(LIFT, random.Random(15)), during(605, 2400, kind), 3600)
        assert min(e.ts_ms for e in events) >= 605_000


HOT = {"rated_pressure": 1.25}


def test_hot_water_boiler_follows_its_heating_curve_and_the_limiter_acts_when_circulation_stops():
    january = T0 - 310 * 86_400  # the simulated clock's January: a cold morning
    model = HotWaterBoilerModel(HOT, random.Random(16))
    out = []
    for i in range(0, 3 * 3600 // 10):
        t = january + i * 10
        faults = {"circulation_pump_failure"} if 3600 <= i * 10 < 5400 else set()
        out.append((i * 10, model.step(t, 10, faults)))
    before = [v for s, v in out if 1800 <= s < 3600]
    assert model.outdoor(january) < -10
    assert set(out[0][1]) == set(HotWaterBoilerModel.metrics) <= {m.key for m in metrics_of(Category.BOILER)}
    assert all(100 < v["outlet_water_temp"] < 131 and v["outlet_water_temp"] - v["return_water_temp"] > 30
               for v in before)  # a cold day: near the 130/70 design
    during = [v for s, v in out if 3600 <= s < 5400]
    assert max(v["outlet_water_temp"] for v in during) >= model.limit - 1  # runs up to the limiter ...
    assert any(v["burner_on"] == 0.0 for v in during)  # ... which cuts the burner
    assert out[-1][1]["burner_on"] == 1.0  # and the boiler returns to service after the pump is back
    cutoffs = [(e.active, e.ts_ms) for e in model.take_events() if e.type == "over_temperature_cutoff"]
    assert [active for active, _ in cutoffs] == [True, False]  # the limiter reports its trip and its reset
    assert january * 1000 + 3_600_000 <= cutoffs[0][1] < cutoffs[1][1]
