"""The engine decides the same whatever the batches: the ground a crash-safe replay stands on.

One ordered stream of deliveries (telemetry of boilers and lifts across threshold, rate-of-change,
flatline, silence and anomaly rules; latched and plain events; a gateway's last will and its return;
out-of-order and repeated instants; impossible values) is fed to engines that cut it into different
batches. Each (equipment, rule) must get the same effects with the same ordinals, and the engine must
end in the same state. A checkpoint taken at any cut and restored into a fresh engine (as a restarted
worker does) continues exactly as the engine that never stopped.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.decoding import decode_batch
from alerts.engine.anomaly import AnomalyConfig
from alerts.engine.defaults import DEFAULT_RULES
from alerts.engine.step import Effect
from alerts.store import EquipmentInfo, PackedState
from alerts.worker import SILENCE_TICK_MS, Engine
from safewatch.contract import Event, GatewayState, Kind, build_topic, encode_event, encode_status
from safewatch.mqtt import Delivery

T0 = 1_764_000_000_000
CONFIG = AnomalyConfig(learning_period=20, avg_window=5, rest_period=5, table_slots=256, tod_buckets=0)
# Windows shortened so rate-of-change and flatline rules fill and breach within a short stream.
RULES = tuple(replace(r, window_s=6.0) if r.window_s else r for r in DEFAULT_RULES)
BOILER_RATED = {"rated_pressure": 1.25, "safety_valve_low": 1.3, "safety_valve_high": 1.325, "report_interval_s": 2}


def _lift(i: int, gateway: str) -> EquipmentInfo:
    return EquipmentInfo(i, f"3110150102024{i:05d}", "3000", {"rated_speed": 1.5, "report_interval_s": 2}, "150102",
                         "150100", "in_use", gateway)


FLEET = [_lift(1, "gw-a"), _lift(2, "gw-a"), _lift(3, "gw-b"),
         EquipmentInfo(4, "110015010202400004", "1000", BOILER_RATED, "150102", "150100", "in_use", "gw-b")]
SPEEDS = [1.0, 1.0, 1.0, 1.64, 1.66, 1.81, 3.1, 99.0]  # near 1.1x, 1.2x, 2x of 1.5; 99 impossible
PRESSURES = [1.0, 1.0, 1.0, 1.1, 1.21, 1.31, 1.5]


def _delivery(kind: Kind, gateway: str, payload: bytes, at_ms: int) -> Delivery:
    return Delivery(build_topic("150100", gateway, kind), payload, 0, 1, 0, at_ms / 1000)


def stream(seed: int, n: int) -> list[Delivery]:
    """A counted stream: ``n`` messages, event time running on with gaps long enough for silence."""
    rng = random.Random(seed)
    ts = T0
    out: list[Delivery] = []
    for _ in range(n):
        ts += rng.choice([300, 700, 1000, 1000, 2500, 9000])
        roll = rng.random()
        if roll < 0.06:
            info = rng.choice(FLEET)
            kind = rng.choice(["passenger_trapped", "door_open_fault"] if info.category == "3000"
                              else ["low_water_cutoff", "safety_valve_lift"])
            event = Event(info.code, kind, ts, rng.random() < 0.6)
            out.append(_delivery(Kind.EVENT, info.gateway_id or "", encode_event(event), ts))
            continue
        if roll < 0.09:
            state = rng.choice([GatewayState.OFFLINE, GatewayState.ONLINE])
            payload = encode_status(state, ts) if rng.random() < 0.5 else encode_status(state)  # a last will: no ts
            out.append(_delivery(Kind.STATUS, rng.choice(["gw-a", "gw-b"]), payload, ts))
            continue
        gateway = rng.choice(["gw-a", "gw-b"])
        entries = []
        for info in FLEET:
            if info.gateway_id != gateway or rng.random() < 0.15:
                continue  # silent now and then
            for _ in range(rng.choice([1, 1, 1, 2])):  # sometimes two instants of one equipment in a message
                at = ts + rng.choice([0, 0, 0, 0, 200, -1500, -4000])  # some out of order
                if info.category == "1000":
                    values = {"drum_pressure": rng.choice(PRESSURES), "drum_level": rng.gauss(0, 20),
                              "steam_temp": 160 + rng.gauss(0, 2)}
                else:
                    values = {"speed": rng.choice(SPEEDS) if rng.random() < 0.3 else 1.0 + rng.gauss(0, 0.02),
                              "load": rng.choice([40.0, 40.0, 109.0, 115.0])}
                if rng.random() < 0.1:
                    del values[rng.choice(list(values))]
                entries.append({"equipment": info.code, "ts": at, "values": values})
        if entries:
            out.append(_delivery(Kind.TELEMETRY, gateway, orjson.dumps({"readings": entries}), ts))
    return out


def _engine() -> Engine:
    engine = Engine(RULES, anomaly=CONFIG)
    engine.add(FLEET)
    return engine


def _restored(engine: Engine) -> Engine:
    """A fresh engine continuing from ``engine``'s checkpoint (every equipment written once at least)."""
    engine.dirty.update(engine.equipment)
    packed, shard = engine.checkpoint()
    fresh = _engine()
    fresh.restore_checkpoint(packed, shard, {})
    return fresh


def _store(stored: dict[int, PackedState], packed: dict[int, PackedState]) -> None:
    """Keep a checkpoint as `save_checkpoint` does: tables only when written whole, marks appended after them."""
    for eq_id, (data, tables, marks) in packed.items():
        _, old_tables, old_marks = stored.get(eq_id, (b"", None, None))
        if tables is not None:
            stored[eq_id] = (data, tables, None)
        else:
            stored[eq_id] = (data, old_tables, old_marks if marks is None else (old_marks or b"") + marks)


def run(deliveries: list[Delivery], cuts: list[int], restart_at: int | None = None, *, incremental: bool = False,
        ) -> tuple[dict[tuple[int, str], list[tuple[Effect, int]]], Engine]:
    """Feed ``deliveries`` in batches ending at ``cuts``; return effects by (equipment, rule) and the engine.
    ``incremental``: a checkpoint after every batch, kept as the database keeps them, and the restart
    continues from them all (else from one checkpoint of everything at the restart)."""
    engine = _engine()
    by_key: dict[tuple[int, str], list[tuple[Effect, int]]] = defaultdict(list)
    stored: dict[int, PackedState] = {}
    shard: bytes | None = None
    start = 0
    for end in [*cuts, len(deliveries)]:
        if start == end:
            continue
        if restart_at is not None and start >= restart_at:
            if incremental:
                fresh = _engine()
                fresh.restore_checkpoint(stored, shard, {})
                engine, restart_at = fresh, None
            else:
                engine, restart_at = _restored(engine), None
        now = max(int(d.received_at * 1000) for d in deliveries[start:end])
        numbered, _ = engine.evaluate_numbered(decode_batch(deliveries[start:end], now))
        for effect, n in numbered:
            by_key[(effect.equipment_id, effect.rule_key)].append((effect, n))
        if incremental and restart_at is not None:
            packed, shard = engine.checkpoint()
            _store(stored, packed)
        start = end
    return dict(by_key), engine


def _state(engine: Engine) -> tuple[object, ...]:
    engine.dirty.update(engine.equipment)
    engine.detectors.bank.tables_whole[:] = True  # every detector's tables, not only those changed
    packed, shard = engine.checkpoint()
    return packed, shard


REFERENCE: dict[int, tuple[dict[tuple[int, str], list[tuple[Effect, int]]], tuple[object, ...]]] = {}


def _reference(seed: int, deliveries: list[Delivery]) -> tuple[dict[tuple[int, str], list[tuple[Effect, int]]],
                                                                  tuple[object, ...]]:
    """The stream message by message, never restarted."""
    if seed not in REFERENCE:
        effects, engine = run(deliveries, list(range(1, len(deliveries))))
        REFERENCE[seed] = effects, _state(engine)
    return REFERENCE[seed]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 5), data=st.data())
def test_any_batch_cuts_give_the_same_effects_and_state(seed: int, data: st.DataObject) -> None:
    deliveries = stream(seed, 160)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(deliveries) - 1), max_size=60), label="cuts"))
    restart = data.draw(st.one_of(st.none(), st.sampled_from([0, *cuts])), label="restart at")
    incremental = data.draw(st.booleans(), label="restart from incremental checkpoints")
    want, want_state = _reference(seed, deliveries)
    got, engine = run(deliveries, cuts, restart, incremental=incremental)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == want[key], key
    assert _state(engine) == want_state


def test_the_stream_reaches_every_kind_of_rule() -> None:
    """The stream is worth comparing: it raises and clears threshold, rate, flatline, silence, anomaly,
    event, status and sensor-fault alerts, and its event time passes many silence ticks."""
    deliveries = stream(0, 160)
    effects, engine = run(deliveries, list(range(1, len(deliveries))))
    keys = {key for _, key in effects}
    for wanted in ("elevator.speed.high", "no_data.silent", "no_data.gateway_offline", "event.passenger_trapped",
                   "sensor.speed.out_of_range", "boiler.drum_pressure.high"):
        assert wanted in keys, wanted
    assert any(k.endswith(".anomaly") for k in keys)
    assert any("rate" in k or "falling" in k or "flatline" in k for k in keys), sorted(keys)
    assert engine.watermark_ms is not None and (engine.watermark_ms - T0) // SILENCE_TICK_MS > 20
