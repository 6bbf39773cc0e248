"""Settled equipment held as rows (`alerts.engine.columns`) decide exactly as equipment held as states.

Two engines see the same deliveries: one with rows (the worker's), one with ``columns=False``, where
every equipment goes through `step_merged` one by one. Their effects, equipment by equipment in
order, and their saved states must be the same after every batch, through breaches near every
limit, anomaly scores, out-of-order readings, several instants of one equipment in a batch, events,
a gateway's last will, silence, rule overrides, a changed rated parameter, and a save and restore.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import replace

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.engine.anomaly import CROSS_KEY, AnomalyConfig
from alerts.engine.anomaly_bank import FleetDetector
from alerts.engine.columns import QuietColumns, compile_shape
from alerts.engine.defaults import BOILER_RULES, DEFAULT_RULES, ELEVATOR_RULES
from alerts.engine.rules import Direction, Limit, Override, Rule, RuleKind
from alerts.engine.step import Effect, EquipmentState, anomaly_metrics, compile_rules
from alerts.store import EquipmentInfo
from alerts.worker import Engine
from safewatch.contract import Category, Event, GatewayState, Kind, Severity, build_topic, encode_event, encode_status
from safewatch.mqtt import Delivery

T0 = 1_764_000_000_000
CONFIG = AnomalyConfig(learning_period=30, avg_window=5, rest_period=5)


def _lift(i: int, gateway: str, **rated: float) -> EquipmentInfo:
    return EquipmentInfo(i, f"3110150102024{i:05d}", "3000", {"rated_speed": 1.5, **rated}, "150102", "150100",
                         "in_use", gateway)


FLEET = [_lift(1, "gw-a"), _lift(2, "gw-a", report_interval_s=2), _lift(3, "gw-b", rated_speed=2.5),
         _lift(4, "gw-b"),
         EquipmentInfo(5, "110015010202400005", "1000", {"rated_pressure": 1.25, "safety_valve_low": 1.3,
                                                        "safety_valve_high": 1.325}, "150102", "150100", "in_use",
                       "gw-b")]
SPEEDS = [0.0, 0.5, 1.0, 1.0, 1.0, 1.64, 1.66, 1.79, 1.81, 3.0, 3.1, 4.5]  # near 1.1x, 1.2x, 2x of 1.5 and 2.5
LOADS = [10.0, 50.0, 109.0, 111.0]


def _telemetry(info: EquipmentInfo, ts: int, values: dict[str, float]) -> Delivery:
    payload = orjson.dumps({"readings": [{"equipment": info.code, "ts": ts, "values": values}]})
    return Delivery(build_topic("150100", info.gateway_id or "", Kind.TELEMETRY), payload, 0, 1, 0, ts / 1000)


def _batches(rng: random.Random, n: int) -> list[list[Delivery]]:
    """``n`` batches of a small fleet: mostly steady readings, with everything that leaves the quiet path."""
    ts = T0
    out = []
    for _ in range(n):
        ts += rng.choice([1000, 1000, 1000, 2000, 7000])
        batch = []
        for info in FLEET:
            if info.id == 2 and rng.random() < 0.2:
                continue  # equipment 2 falls silent now and then (it expects a reading every 2 s)
            for _ in range(rng.choice([1, 1, 1, 2])):  # sometimes two instants of one equipment in a batch
                at = ts + rng.choice([0, 0, 0, 300, -1500])  # some out of order
                if info.category == "1000":
                    values = {"drum_pressure": rng.choice([1.0, 1.0, 1.0, 1.0, 1.1, 1.21, 1.31]),  # often stuck
                              "drum_level": rng.choice([0.0, 0.0, 0.0, rng.gauss(0, 20)]),
                              "steam_temp": 160 + rng.gauss(0, 2)}
                    if rng.random() < 0.1:
                        del values[rng.choice(list(values))]
                else:
                    steady = rng.random() < 0.7
                    values = {"speed": 1.0 + rng.gauss(0, 0.01) if steady else rng.choice(SPEEDS),
                              "load": 40.0 if steady else rng.choice(LOADS)}
                    if rng.random() < 0.1:
                        del values[rng.choice(["speed", "load"])]
                batch.append(_telemetry(info, at, values))
        if rng.random() < 0.05:
            info = rng.choice(FLEET[:4])
            event = Event(info.code, rng.choice(["passenger_trapped", "door_open_fault"]), ts,
                          rng.random() < 0.6)
            batch.append(Delivery(build_topic("150100", info.gateway_id or "", Kind.EVENT), encode_event(event),
                                  0, 1, 0, ts / 1000))
        if rng.random() < 0.03:
            state = rng.choice([GatewayState.OFFLINE, GatewayState.ONLINE])
            batch.append(Delivery(build_topic("150100", "gw-b", Kind.STATUS), encode_status(state, ts), 0, 1, 0,
                                  ts / 1000))
        rng.shuffle(batch)
        out.append(batch)
    return out


def _by_equipment(effects: list[Effect]) -> dict[int, list[Effect]]:
    grouped: dict[int, list[Effect]] = defaultdict(list)
    for e in effects:
        grouped[e.equipment_id].append(e)
    return dict(grouped)


def _engines(anomaly: bool, rules: tuple[Rule, ...] = DEFAULT_RULES) -> tuple[Engine, Engine]:
    rows = Engine(rules, anomaly=CONFIG, anomaly_enabled=anomaly)
    states = Engine(rules, anomaly=CONFIG, anomaly_enabled=anomaly, columns=False)
    for e in (rows, states):
        e.add(FLEET)
    return rows, states


def _run_both(rows: Engine, states: Engine, batches: list[list[Delivery]], rng: random.Random) -> int:
    """Feed both engines, compare after every batch; return the most rows held at once."""
    most = 0
    for k, batch in enumerate(batches):
        if k == len(batches) // 3:  # an override on one lift, and a changed rated speed on another
            for e in (rows, states):
                e.set_overrides({1: {"elevator.speed.high": Override("elevator.speed.high", limit=1.2)}})
                e.add([_lift(4, "gw-b", rated_speed=1.0)])
        if k == len(batches) // 2:  # a graceful restart of both: saved as plain data, restored
            saved = json.loads(json.dumps(rows.plain_states()))
            assert saved == json.loads(json.dumps(states.plain_states()))
            for e in (rows, states):
                e.restore({int(i): s for i, s in saved.items()})
        now = max(int(d.received_at * 1000) for d in batch) + rng.choice([0, 5000])
        got, evaluated = rows.evaluate(batch, now)
        want, evaluated_too = states.evaluate(batch, now)
        assert _by_equipment(got) == _by_equipment(want), f"batch {k}"
        assert evaluated == evaluated_too
        most = max(most, len(rows.columns))
    assert rows.plain_states() == states.plain_states()
    assert rows.watermark_ms == states.watermark_ms
    return most


def test_rows_decide_as_states_do_with_anomaly_scores() -> None:
    for seed in (1, 2):
        rng = random.Random(seed)
        rows, states = _engines(anomaly=True)
        batches = _batches(rng, 400)
        most = _run_both(rows, states, batches, rng)
        assert most >= 3  # the steady lifts were rows (their detectors past learning)
        effects = [e for batch in batches for e in rows.evaluate(batch, T0)[0]]  # replayed: all out of order
        assert effects == [e for batch in batches for e in states.evaluate(batch, T0)[0]]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 60))
def test_rows_decide_as_states_do_without_anomaly(seed: int, n: int) -> None:
    rng = random.Random(seed)
    rows, states = _engines(anomaly=False)
    _run_both(rows, states, _batches(rng, n), rng)


@pytest.mark.parametrize("window_s", [4.0, 32.0])  # 32 s: buckets 1 s wide, as readings are apart
@pytest.mark.parametrize("anomaly", [True, False])  # without: rows from the first instant, windows not yet covered
def test_rows_decide_as_states_do_on_rate_and_flatline_windows(window_s: float, anomaly: bool) -> None:
    """The boiler's rate and flatline windows shortened, so they fill, slide and breach within a test;
    with a high flatline rule too (the defaults have only low ones): the drum level moving too much."""
    jumpy = Rule("boiler.drum_level.jumpy", Category.BOILER, "drum_level", Direction.HIGH, Limit(absolute=30.0),
                 Severity.MINOR, kind=RuleKind.FLATLINE, window_s=window_s, message="drum level jumps")
    short = (*(replace(r, window_s=window_s) if r.window_s else r for r in DEFAULT_RULES), jumpy)
    for seed in (3, 4):
        rng = random.Random(seed)
        rows, states = _engines(anomaly=anomaly, rules=short)
        _run_both(rows, states, _batches(rng, 300), rng)


def _always_loud(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """Every anomaly rule made to breach, so that every instant comes back with its scores."""
    return tuple(replace(r, limit=Limit(absolute=-1.0)) if r.kind is RuleKind.ANOMALY else r for r in rules)


def test_rows_give_the_fleet_detectors_scores_with_the_cross_metric_term() -> None:
    """Each instant's scores must be what `FleetDetector.score` gives a twin detector for the same
    readings, cross-metric and combined too; boilers and lifts in one wave (two groups of rows, whose
    readings the detector bank scores in one update)."""
    boiler_rules, lift_rules = _always_loud(BOILER_RULES), _always_loud(ELEVATOR_RULES)
    boilers = compile_shape(compile_rules(boiler_rules, FLEET[4].rated))
    lifts = compile_shape(compile_rules(lift_rules, FLEET[0].rated))
    assert boilers is not None and boilers.shape.cross and lifts is not None
    metrics = {1: anomaly_metrics(boiler_rules), 2: anomaly_metrics(boiler_rules),
               3: anomaly_metrics(lift_rules), 4: anomaly_metrics(lift_rules)}
    rows_fleet, twin = FleetDetector(CONFIG), FleetDetector(CONFIG)
    rng = random.Random(7)

    def readings(eq: int, whole: bool = False) -> dict[str, float]:
        if eq >= 3:
            values = {"speed": 1.0 + rng.gauss(0, 0.05), "load": rng.uniform(10, 90)}
        else:
            values = {"drum_pressure": 1.0 + rng.gauss(0, 0.02), "drum_level": rng.gauss(0, 10),
                      "steam_temp": 160 + rng.gauss(0, 1)}
        if not whole and rng.random() < 0.2:
            del values[rng.choice([m for m in values if m != "speed"])]  # a boiler's: then no cross-metric term
        return values

    for fleet in (rows_fleet, twin):
        for eq, keys in metrics.items():
            fleet.add(eq, keys)
    for k in range(CONFIG.learning_period + 5):  # both learn the same
        requests = [(eq, (T0 + k * 1000) / 1000, {m: v for m, v in readings(eq, whole=True).items()
                                                  if m in metrics[eq]}) for eq in metrics]
        assert rows_fleet.score(requests) == twin.score(requests)
    columns = QuietColumns()
    for eq in metrics:
        banked = rows_fleet.banked(eq)
        assert banked is not None
        assert columns.admit(eq, boilers if eq <= 2 else lifts, EquipmentState(), banked[1:])
    for k in range(200):
        ts = T0 + (CONFIG.learning_period + 5 + k) * 1000
        wave = [(eq, ts, readings(eq)) for eq in rng.sample(sorted(metrics), len(metrics))]
        got = {eq: found for eq, _, _, found in columns.step(wave, rows_fleet)}
        want = twin.score([(eq, ts / 1000, {m: v[m] for m in metrics[eq] if m in v}) for eq, _, v in wave])
        assert [got[eq] for eq, _, _ in wave] == want
    assert any(found[CROSS_KEY] > 0 for found in want)
