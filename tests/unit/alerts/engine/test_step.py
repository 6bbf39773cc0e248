"""The engine step over plain data: each rule kind, chattering, suppression by design, events, silence."""

from __future__ import annotations

import math
import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.engine.anomaly import AnomalyConfig
from alerts.engine.defaults import BOILER_RULES, ELEVATOR_RULES, ENGINE_ANOMALY, VESSEL_RULES
from alerts.engine.rules import Change, Condition, Direction, Limit, Rule, RuleKind, evaluate
from alerts.engine.step import (
    SENSOR_FAULT_KEYS,
    WINDOW_BUCKETS,
    Bucket,
    ClearAlert,
    EquipmentState,
    RaiseAlert,
    check_silence,
    compile_rules,
    event_effects,
    new_detector,
    push_window,
    range_fault_effects,
    sensor_fault_key,
    status_effects,
    step,
    step_general,
    step_quiet,
    window_rate_per_min,
    window_span,
)
from safewatch.contract import Category, Severity

BOILER = {"rated_pressure": 1.25, "safety_valve_low": 1.3, "safety_valve_high": 1.325}
ELEVATOR = {"rated_speed": 1.5}
T0 = 1_764_000_000_000


def feed(rules, rated, series, state=None):
    """Run (metric, ts, value) readings one at a time, as batches of one; return state and effects."""
    state = state or EquipmentState(detector=new_detector(rules, ENGINE_ANOMALY))
    effects = []
    for reading in series:
        state, new = step(1, rated, rules, state, [reading])
        effects.extend(new)
    return state, effects


def keys(effects, kind=RaiseAlert):
    return [e.rule_key for e in effects if isinstance(e, kind)]


def test_threshold_high_and_high_high_from_rated_parameters() -> None:
    series = [("drum_pressure", T0 + i * 1000, 1.0 + 0.02 * i) for i in range(20)]  # 1.0 → 1.38 MPa
    _, effects = feed(BOILER_RULES, BOILER, series)
    raised = {e.rule_key: e for e in effects if isinstance(e, RaiseAlert)}
    # High at 0.96 × 1.25 = 1.2 after its 5 s on-delay; high-high at the lower safety valve 1.3 at once.
    assert raised["boiler.drum_pressure.high"].limit == 1.2
    assert raised["boiler.drum_pressure.high"].ts_ms == T0 + 16_000  # first > 1.2 at 11 s, + 5 s
    assert raised["boiler.drum_pressure.high_high"].ts_ms == T0 + 16_000  # 1.32 > 1.3
    assert raised["boiler.drum_pressure.high_high"].severity is Severity.CRITICAL


def test_batching_does_not_change_the_result() -> None:
    """Event time only: one batch of 20 readings or 20 batches of one give the same effects."""
    series = [("drum_pressure", T0 + i * 1000, 1.0 + 0.02 * i) for i in range(20)]
    _, one_by_one = feed(BOILER_RULES, BOILER, series)
    _, at_once = step(1, BOILER, BOILER_RULES, EquipmentState(), list(reversed(series)))
    assert one_by_one == at_once


def test_rate_of_change_uses_the_event_time_window() -> None:
    # Level falls 2 mm per second = 120 mm/min > 60 mm/min; the 30 s window must be covered first.
    series = [("drum_level", T0 + i * 1000, 0.0 - (2.0 * (i - 40) if i > 40 else 0.0)) for i in range(80)]
    _, effects = feed([r for r in BOILER_RULES if r.kind is RuleKind.RATE_OF_CHANGE], BOILER, series)
    raise_ = next(e for e in effects if isinstance(e, RaiseAlert))
    assert raise_.rule_key == "boiler.drum_level.falling"
    assert T0 + 41_000 <= raise_.ts_ms <= T0 + 71_000  # within one window of the fall starting


def test_slow_change_does_not_trip_the_rate_rule() -> None:
    series = [("drum_level", T0 + i * 1000, -0.5 * i) for i in range(200)]  # 30 mm/min
    _, effects = feed([r for r in BOILER_RULES if r.kind is RuleKind.RATE_OF_CHANGE], BOILER, series)
    assert effects == []


def test_flatline_needs_the_whole_window_unchanged() -> None:
    rng = random.Random(1)
    live = [("drum_pressure", T0 + i * 5000, 1.06 + rng.gauss(0, 0.004)) for i in range(200)]
    stuck = [("drum_pressure", T0 + (200 + i) * 5000, 1.0612) for i in range(200)]
    rules = [r for r in BOILER_RULES if r.key == "boiler.drum_pressure.flatline"]
    state, effects = feed(rules, BOILER, live)
    assert effects == []
    state, effects = feed(rules, BOILER, stuck, state)
    raise_ = next(e for e in effects if isinstance(e, RaiseAlert))
    # Stuck from 1000 s; the window is 600 s, so not before 1600 s of event time (and within two of the
    # window's 32 buckets after it).
    assert T0 + 1_600_000 <= raise_.ts_ms <= T0 + 1_600_000 + 2 * 600_000 // 32
    # Moving again clears it.
    _, effects = feed(rules, BOILER, [("drum_pressure", T0 + 2_100_000, 1.1)], state)
    assert keys(effects, ClearAlert) == ["boiler.drum_pressure.flatline"]


def test_window_state_is_bounded() -> None:
    rules = [r for r in BOILER_RULES if r.key == "boiler.drum_pressure.flatline"]
    state, _ = feed(rules, BOILER, [("drum_pressure", T0 + i * 100, 1.0 + i * 1e-3) for i in range(20_000)])
    assert len(state.windows["boiler.drum_pressure.flatline"]) <= WINDOW_BUCKETS + 2


def test_out_of_range_rule_and_contract_rejections() -> None:
    rules = [r for r in ELEVATOR_RULES if r.kind is RuleKind.OUT_OF_RANGE]
    state, effects = feed(rules, ELEVATOR, [("speed", T0, 1.0), ("speed", T0 + 1000, 3.5), ("speed", T0 + 2000, 1.0)])
    assert [(type(e).__name__, e.rule_key) for e in effects] == [("RaiseAlert", "elevator.speed.implausible"),
                                                                 ("ClearAlert", "elevator.speed.implausible")]
    # A value the contract rejected (outside the catalogue's physical range) is a sensor fault ...
    state, effects = range_fault_effects(1, state, metric="speed", ts_ms=T0 + 3000, detail="speed=99 m/s")
    assert keys(effects) == ["sensor.speed.out_of_range"]
    state, again = range_fault_effects(1, state, metric="speed", ts_ms=T0 + 3500, detail="speed=99 m/s")
    assert again == []
    # ... until the next valid reading of that metric.
    _, effects = step(1, ELEVATOR, rules, state, [("speed", T0 + 4000, 1.0)])
    assert keys(effects, ClearAlert) == ["sensor.speed.out_of_range"]


def test_silence_and_gateway_last_will() -> None:
    rules = [r for r in VESSEL_RULES if r.kind is RuleKind.NO_DATA]
    rated = {"design_pressure": 0.8, "report_interval_s": 5.0}  # silent after 15 s
    state, _ = step(1, rated, rules, EquipmentState(), [("vessel_pressure", T0, 0.6)])
    state, effects = check_silence(1, rated, rules, state, T0 + 10_000)
    assert effects == []
    state, effects = check_silence(1, rated, rules, state, T0 + 20_000)
    assert keys(effects) == ["no_data.silent"] and isinstance(effects[0], RaiseAlert)
    assert effects[0].suppressed_by is None
    state, effects = step(1, rated, rules, state, [("vessel_pressure", T0 + 21_000, 0.6)])
    assert keys(effects, ClearAlert) == ["no_data.silent"]
    # The last will says offline at once; silence after that is covered by it (suppressed by design).
    state, effects = status_effects(1, rules, state, online=False, ts_ms=T0 + 22_000)
    assert keys(effects) == ["no_data.gateway_offline"]
    state, effects = check_silence(1, rated, rules, state, T0 + 60_000)
    assert isinstance(effects[0], RaiseAlert) and effects[0].rule_key == "no_data.silent"
    assert effects[0].suppressed_by == "no_data.gateway_offline"
    state, effects = status_effects(1, rules, state, online=True, ts_ms=T0 + 61_000)
    # Back online: the offline alert clears and the still-silent child is annunciated.
    assert [(type(e).__name__, e.rule_key, getattr(e, "suppressed_by", None)) for e in effects] == [
        ("ClearAlert", "no_data.gateway_offline", None), ("RaiseAlert", "no_data.silent", None)]


def test_a_quiet_silence_check_keeps_the_state_and_a_running_delay_is_still_judged() -> None:
    rule = Rule("s.x", Category.PRESSURE_VESSEL, "readings",
                Direction.HIGH, Limit(absolute=30.0), Severity.MINOR, kind=RuleKind.NO_DATA, on_delay_s=20)
    state, _ = step(1, {}, (rule,), EquipmentState(), [("vessel_pressure", T0, 0.6)])
    assert check_silence(1, {}, (rule,), state, T0 + 10_000) == (state, [])  # not silent: the very same state
    state, effects = check_silence(1, {}, (rule,), state, T0 + 40_000)  # silent 40 s: the on-delay starts
    assert effects == [] and state.conditions["s.x"].pending_since_ms == T0 + 40_000
    state, _ = step(1, {}, (rule,), state, [("vessel_pressure", T0 + 45_000, 0.6)])
    # Heard again: the next check ends the running delay (a stale one would raise too early later).
    state, effects = check_silence(1, {}, (rule,), state, T0 + 50_000)
    assert effects == [] and state.conditions["s.x"].pending_since_ms is None
    assert check_silence(1, {}, (rule,), state, T0 + 60_000) == (state, [])
    state, effects = check_silence(1, {}, (rule,), state, T0 + 90_000)  # silent 45 s: a new delay
    assert effects == []
    state, effects = check_silence(1, {}, (rule,), state, T0 + 100_000)
    assert effects == []
    state, effects = check_silence(1, {}, (rule,), state, T0 + 110_000)
    assert keys(effects) == ["s.x"] and effects[0].ts_ms == T0 + 110_000


def test_never_heard_equipment_is_not_silent() -> None:
    rules = [r for r in VESSEL_RULES if r.kind is RuleKind.NO_DATA]
    assert check_silence(1, {}, rules, EquipmentState(), T0 + 10**9)[1] == []


def test_high_high_covers_high_on_the_same_reading() -> None:
    _, effects = feed(ELEVATOR_RULES, ELEVATOR, [("speed", T0, 1.9)])  # > 1.2 × 1.5: both breach
    raised = {e.rule_key: e for e in effects if isinstance(e, RaiseAlert)}
    assert raised["elevator.speed.high_high"].suppressed_by is None
    assert raised["elevator.speed.high"].suppressed_by == "elevator.speed.high_high"


def test_latched_event_covers_its_child_and_repeats_change_nothing() -> None:
    rules = ELEVATOR_RULES
    state, effects = event_effects(1, rules, EquipmentState(), event_type="overspeed", active=True, ts_ms=T0)
    assert isinstance(effects[0], RaiseAlert) and effects[0].latched and effects[0].severity is Severity.CRITICAL
    state, effects = event_effects(1, rules, state, event_type="overspeed", active=True, ts_ms=T0 + 1)
    assert effects == []
    state, effects = step(1, ELEVATOR, rules, state, [("speed", T0 + 1000, 1.9)])
    assert {e.rule_key: e.suppressed_by for e in effects if isinstance(e, RaiseAlert)}[
        "elevator.speed.high_high"] == "event.overspeed"


def test_passenger_trapped_is_critical_and_latched() -> None:
    _, effects = event_effects(1, ELEVATOR_RULES, EquipmentState(), event_type="passenger_trapped", active=True,
                               ts_ms=T0)
    [e] = effects
    assert isinstance(e, RaiseAlert) and e.severity is Severity.CRITICAL and e.latched
    assert e.kind is RuleKind.EVENT and e.rule_key == "event.passenger_trapped"


def test_chattering_is_flagged_and_the_clear_held() -> None:
    rule = Rule("c", Category.BOILER, "drum_pressure", Direction.HIGH, Limit(absolute=1.2), Severity.MAJOR)
    flapping = [("drum_pressure", T0 + i * 5000, 1.3 if i % 2 == 0 else 1.1) for i in range(8)]
    state, effects = feed([rule], BOILER, flapping)
    # raise, clear, raise (the third transition within a minute is flagged); from then on a clear waits
    # while the rule is chattering: until fewer than 3 changes lie in the last minute (at 60 s).
    assert [type(e).__name__ for e in effects] == ["RaiseAlert", "ClearAlert", "RaiseAlert"]
    assert [e.chattering for e in effects] == [False, False, True]
    quiet = [("drum_pressure", T0 + 40_000 + i * 5000, 1.1) for i in range(14)]
    _, effects = feed([rule], BOILER, quiet, state)
    [clear] = effects
    assert isinstance(clear, ClearAlert) and clear.ts_ms == T0 + 60_000 and clear.chattering


def test_anomaly_rule_raises_a_warning_on_a_change_of_behaviour() -> None:
    rng = random.Random(3)
    config = AnomalyConfig(learning_period=200, table_slots=2048, tod_buckets=0, rest_period=50)
    rules = [r for r in VESSEL_RULES if r.kind is RuleKind.ANOMALY]
    normal = [(T0 + i * 5000, 0.7 + 0.05 * math.sin(i / 5) + rng.gauss(0, 0.003), 40 + rng.gauss(0, 0.3))
              for i in range(600)]
    odd = [(T0 + (600 + i) * 5000, 0.7 + rng.gauss(0, 0.08), 40 + rng.gauss(0, 0.3)) for i in range(100)]
    state = EquipmentState(detector=new_detector(rules, config))
    effects = []
    for ts, p, t in normal + odd:
        state, new = step(1, {"design_pressure": 0.8}, rules, state, [("vessel_pressure", ts, p),
                                                                      ("vessel_temp", ts, t)])
        effects.extend(new)
    raised = [e for e in effects if isinstance(e, RaiseAlert)]
    assert raised and all(e.ts_ms >= T0 + 600 * 5000 for e in raised), [(e.rule_key, e.ts_ms) for e in raised]
    assert {e.severity for e in raised} <= {Severity.WARNING, Severity.MINOR}
    assert state.detector is not None and state.detector.nbytes() < 64 * 1024


def test_same_input_same_effects() -> None:
    rng = random.Random(5)
    series = [(m, T0 + i * 1000, v) for i in range(400)
              for m, v in (("drum_pressure", 1.05 + rng.gauss(0, 0.05)), ("drum_level", rng.gauss(0, 30)),
                           ("steam_temp", 160 + rng.gauss(0, 2)))]
    _, a = feed(BOILER_RULES, BOILER, series)
    _, b = feed(BOILER_RULES, BOILER, series)
    assert a and a == b


def test_saved_state_continues_exactly() -> None:
    """A worker stopped and restarted mid-stream (state saved as JSON) raises what an uninterrupted one does."""
    import json

    from alerts.engine.step import state_from_plain, state_to_plain

    rng = random.Random(8)
    config = AnomalyConfig(learning_period=100, table_slots=1024, tod_buckets=0, rest_period=20)
    series = [(T0 + i * 5000, 0.7 + 0.05 * math.sin(i / 5) + rng.gauss(0, 0.004 if i < 400 else 0.08),
               40 + rng.gauss(0, 0.3)) for i in range(500)]
    rules = VESSEL_RULES

    def run(state, part):
        out = []
        for ts, p, t in part:
            state, new = step(1, {"design_pressure": 0.8, "safety_valve_set": 0.776}, rules, state,
                              [("vessel_pressure", ts, p), ("vessel_temp", ts, t)])
            out += new
        return state, out

    fresh = EquipmentState(detector=new_detector(rules, config))
    _, straight = run(fresh, series)
    half, first = run(EquipmentState(detector=new_detector(rules, config)), series[:250])
    restored = state_from_plain(json.loads(json.dumps(state_to_plain(half))))
    _, second = run(restored, series[250:])
    assert straight and first + second == straight


# -- the shortcut for readings that leave a normal condition normal must decide as `evaluate` does --------------

_SPACING_MS = 61_000  # over a minute apart: never chattering, so the reference needs no chatter hold


@given(kind=st.sampled_from([RuleKind.THRESHOLD, RuleKind.OUT_OF_RANGE]),
       direction=st.sampled_from(list(Direction)),
       deadband=st.sampled_from([0.0, 0.5]), on_delay_s=st.sampled_from([0.0, 61.0, 200.0]),
       off_delay_s=st.sampled_from([0.0, 61.0, 200.0]),
       values=st.lists(st.sampled_from([-2.0, 0.0, 0.9, 1.0, 1.2, 2.0, 3.0]), min_size=1, max_size=40),
       batch=st.integers(1, 5))
def test_step_decides_each_reading_as_evaluate_does(kind, direction, deadband, on_delay_s, off_delay_s, values,
                                                    batch):
    rule = Rule("t.x", Category.BOILER, "drum_pressure", direction, Limit(absolute=1.0), Severity.MAJOR,
                deadband=deadband, on_delay_s=on_delay_s, off_delay_s=off_delay_s, kind=kind,
                low=Limit(absolute=0.0) if kind is RuleKind.OUT_OF_RANGE else None)
    readings = [("drum_pressure", T0 + i * _SPACING_MS, v) for i, v in enumerate(values)]
    expected, cond = [], Condition()
    for _, ts, v in readings:
        observed = v if kind is RuleKind.THRESHOLD else (0.0 if 0.0 <= v <= 1.0 else 1.0)
        cond, change = evaluate(rule, 1.0 if kind is RuleKind.THRESHOLD else 0.5, cond, observed, ts)
        if change is not None:
            expected.append((change is Change.RAISE, ts))
    state, got = EquipmentState(), []
    for k in range(0, len(readings), batch):  # batches of several instants take the same decisions
        state, effects = step(1, {}, (rule,), state, readings[k:k + batch])
        got += [(isinstance(e, RaiseAlert), e.ts_ms) for e in effects]
    assert got == expected
    assert state.conditions["t.x"].active == cond.active


@settings(max_examples=300)
@given(kind=st.sampled_from([RuleKind.RATE_OF_CHANGE, RuleKind.FLATLINE]),
       direction=st.sampled_from(list(Direction)),
       limit=st.sampled_from([0.0, 0.5, 2.0, 10.0]), deadband=st.sampled_from([0.0, 0.5]),
       on_delay_s=st.sampled_from([0.0, 3.0]), off_delay_s=st.sampled_from([0.0, 3.0]),
       steps=st.lists(st.tuples(st.integers(-1, 3), st.sampled_from([-2, -1, 0, 1, 2] * 3 + [-15, 15])),
                      min_size=20, max_size=60))
def test_window_rules_decide_each_reading_as_evaluate_does(kind, direction, limit, deadband, on_delay_s, off_delay_s,
                                                          steps):
    # Readings 0-3 s apart (some out of order) against a 6 s window, a random walk of small steps and
    # jumps: the window fills, slides and is anchored, spans and rates come near the limits; the
    # shortcut for a settled condition must decide exactly as the reference does.
    rule = Rule("w.x", Category.BOILER, "drum_level", direction, Limit(absolute=limit), Severity.MINOR,
                deadband=deadband, on_delay_s=on_delay_s, off_delay_s=off_delay_s, kind=kind, window_s=6)
    ts, value, readings = T0, 0.0, []
    for gap_s, tenths in steps:
        ts += gap_s * 1000
        value += tenths / 10
        readings.append(("drum_level", ts, value))
    expected, cond = [], Condition()
    buckets: tuple[Bucket, ...] = ()
    changes: list[int] = []
    for _, t, v in readings:
        buckets = push_window(buckets, v, t, 6000)
        if kind is RuleKind.RATE_OF_CHANGE:
            rate = window_rate_per_min(buckets, 6000)
            observed = None if rate is None else (rate if direction is Direction.HIGH else -rate)
        else:
            observed = window_span(buckets, 6000)
        if observed is None:
            continue
        recent = [c for c in changes if t - c < 60_000][-6:]
        hold = max(off_delay_s, 60.0) if len(recent) >= 3 else None  # the chatter hold, as the engine applies it
        cond, change = evaluate(rule, limit, cond, observed, t, off_delay_s=hold)
        if change is not None:
            changes = [*recent, t]
            expected.append((change is Change.RAISE, t))
    state, got = EquipmentState(), []
    for reading in readings:  # one at a time, so a late reading stays late (a batch sorts its instants)
        state, effects = step(1, {}, (rule,), state, [reading])
        got += [(isinstance(e, RaiseAlert), e.ts_ms) for e in effects]
    assert got == expected
    assert state.windows.get("w.x", ()) == buckets


# -- the quiet path (`step_quiet`) must return exactly what the general step does, or decline --------------------

_VESSEL = {"design_pressure": 0.8, "safety_valve_set": 0.776}
_CASES = {  # rules (windows shortened to seconds, so random walks cover them), rated parameters
    "boiler": (BOILER_RULES, BOILER), "vessel": (VESSEL_RULES, _VESSEL), "elevator": (ELEVATOR_RULES, ELEVATOR)}


def _short_windows(rules):
    return tuple(replace(r, window_s=6.0) if r.window_s else r for r in rules)


def _near_limits(table):
    """Per metric with rules: values on, just inside and just past each of its limits."""
    points: dict[str, list[float]] = {}
    for metric, checks in table.checked:
        found = {0.0}
        for _, limit, low, _, _ in checks:
            for x in (limit, *(() if low is None else (low,))):
                found |= {x, x - 0.01 - abs(x) * 0.01, x + 0.01 + abs(x) * 0.01}
        points[metric] = sorted(found)
    return points


@settings(max_examples=200)
@given(case=st.sampled_from(sorted(_CASES)),
       steps=st.lists(st.tuples(st.integers(-2, 4), st.lists(st.integers(0, 30), min_size=8, max_size=8),
                                st.sampled_from([None, 0.0, 0.79, 0.81])), min_size=1, max_size=50),
       fault=st.sampled_from([None, "sensor", "silent", "offline"]))
def test_the_quiet_path_returns_what_the_general_step_does(case, steps, fault):
    rules, rated = _CASES[case]
    table = compile_rules(_short_windows(rules), rated)
    points = _near_limits(table)
    conditions = {}
    if fault == "sensor":
        conditions[sensor_fault_key(table.checked[0][0])] = Condition(True, None, None, T0)
    elif fault == "silent":
        conditions["no_data.silent"] = Condition(True, None, None, T0)
    elif fault == "offline":
        conditions["no_data.gateway_offline"] = Condition(True, None, None, T0)
    state, ts = EquipmentState(conditions), T0
    for gap_s, picks, score in steps:
        ts += gap_s * 1000
        # Each metric with rules gets a value near one of its limits, or is not reported (pick past the list).
        values = {m: p[i] for (m, p), i in zip(points.items(), picks, strict=False) if i < len(p)}
        if not values:
            continue
        scores = {} if score is None else {0: {r.metric: score for r, _ in table.anomaly}}
        expected, effects = step_general(1, table, state, [(ts, values)], scores)
        quiet = step_quiet(table, state, ts, values, scores.get(0))
        silent = state.conditions.get("no_data.silent")
        if not SENSOR_FAULT_KEYS.isdisjoint(state.conditions) or (silent is not None and silent.active):
            assert quiet is None  # a sensor fault or an active silence always goes the general way
        if quiet is not None:
            assert effects == []
            assert quiet == expected
        state = expected


def test_the_quiet_path_takes_steady_readings_and_declines_a_breach() -> None:
    table = compile_rules(ELEVATOR_RULES, ELEVATOR)
    state = EquipmentState()
    for i in range(5):
        quiet = step_quiet(table, state, T0 + i * 1000, {"speed": 1.0, "load": 50.0}, {"speed": 0.1})
        assert quiet is not None
        state = quiet
    assert state.conditions["elevator.speed.high"] == Condition(False, None, None, T0 + 4000)
    assert state.last_seen_ms == T0 + 4000
    assert step_quiet(table, state, T0 + 5000, {"speed": 1.7, "load": 50.0}, None) is None  # over 1.1 x 1.5
    assert step_quiet(table, state, T0 + 5000, {"speed": 1.0}, {"speed": 0.95}) is None  # anomaly score over 0.8
    assert step_quiet(table, state, T0 + 3000, {"speed": 1.0}, None) is None  # out of order: `evaluate` decides
