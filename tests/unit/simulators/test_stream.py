"""The published stream without a broker: deterministic per seed, contract-valid, gateways misbehave on demand."""

from __future__ import annotations

import hashlib
import random

import orjson
import pytest

from safewatch.contract import Limits, decode_event, decode_status, decode_telemetry, parse_topic
from simulators.faults import Fault, ground_truth_text, random_faults
from simulators.fleet import demo_fleet, plan_faults
from simulators.gateway import Gateway
from simulators.simulation import SimEquipment, Simulation

START = 1_764_057_600_000


def stream(equipment: list[SimEquipment], *, seed: int, faults: list[Fault], ticks: int = 60,
           dt_s: float = 10.0) -> list[tuple[str, str, bytes]]:
    sim = Simulation(equipment, seed=seed)
    out = [(o.action, o.topic, o.payload) for o in sim.connect(START)]
    for i in range(1, ticks + 1):
        out += [(o.action, o.topic, o.payload) for o in sim.tick(START + i * int(dt_s * 1000), dt_s, faults)]
    return out


@pytest.fixture(scope="module")
def equipment() -> list[SimEquipment]:
    return demo_fleet(300, gateways=10, seed=4)


def digest(items: list[tuple[str, str, bytes]]) -> str:
    h = hashlib.sha256()
    for action, topic, payload in items:
        h.update(f"{action}|{topic}|".encode() + payload + b"\n")
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(equipment):
    faults = plan_faults(equipment, seed=9, start_ms=START, horizon_ms=600_000, per_equipment_hour=0.5,
                         per_gateway_hour=0.5)
    assert faults
    first = stream(equipment, seed=9, faults=faults)
    assert digest(first) == digest(stream(equipment, seed=9, faults=faults))
    assert digest(first) != digest(stream(equipment, seed=10, faults=faults))
    # A model's stream does not depend on which other equipment share the run.
    alone = [e for e in equipment if e.gateway_id == equipment[0].gateway_id]
    mine = [p for a, t, p in stream(alone, seed=9, faults=[]) if t.endswith("/telemetry")]
    ours = [p for a, t, p in stream(equipment, seed=9, faults=[])
            if t.endswith("/telemetry") and parse_topic(t).gateway_id == alone[0].gateway_id]
    assert mine and mine == ours


def test_every_message_is_contract_valid_and_batches_many_equipment(equipment):
    faults = [Fault(e.code, "overpressure" if e.category != "3000" else "passenger_trapped", START + 60_000,
                    START + 500_000) for e in equipment[:40]]
    limits = Limits(now_ms=START + 3_600_000)
    telemetry = events = 0
    batch_sizes = []
    for _action, topic, payload in stream(equipment, seed=1, faults=faults):
        kind = parse_topic(topic).kind
        if kind == "telemetry":
            msg = decode_telemetry(payload, limits)
            assert not msg.rejected, msg.rejected[:3]
            batch_sizes.append(len({r.equipment for r in msg.readings}))
            telemetry += 1
        elif kind == "event":
            decode_event(payload, limits)
            events += 1
        else:
            decode_status(payload, limits)
    gateways = {e.gateway_id for e in equipment}
    assert telemetry == 60 * len(gateways) and events > 0
    assert max(batch_sizes) == 30 and sum(batch_sizes) == 60 * len(equipment)  # one message per gateway per tick


def test_ground_truth_lists_every_fault_in_both_formats():
    rng = random.Random(3)
    faults = random_faults([("A1", "1000"), ("B2", "2000"), ("C3", "3000")], rng=rng, start_ms=START,
                           horizon_ms=3_600_000, per_equipment_hour=3.0)
    lines = [orjson.loads(x) for x in ground_truth_text(faults).splitlines()]
    assert len(lines) == len(faults) >= 5
    assert {(x["code"], x["kind"], x["start_ms"], x["end_ms"]) for x in lines} == {
        (f.code, f.kind, f.start_ms, f.end_ms) for f in faults}
    csv_rows = ground_truth_text(faults, fmt="csv").splitlines()
    assert csv_rows[0].startswith("code,kind,start_ms,end_ms") and len(csv_rows) == len(faults) + 1


def gateway_run(faults: dict[str, Fault], ticks: int = 12) -> list[tuple[str, int]]:
    gw = Gateway("gw-1", "150100")
    out = []
    for i in range(ticks):
        t = START + i * 10_000
        active = {k: f for k, f in faults.items() if f.active(t)}
        for o in gw.emit(t, {"X1": {"speed": float(i)}}, [], active):
            ts = orjson.loads(o.payload)["ts"] if o.payload and o.topic.endswith("telemetry") else -1
            out.append((o.action, ts))
    return out


def window(kind: str, magnitude: float | None = None) -> dict[str, Fault]:
    return {kind: Fault("gw-1", kind, START + 30_000, START + 70_000, magnitude=magnitude, scope="gateway")}


def test_gateway_disconnect_drops_then_reconnects_online_and_forwards_what_it_kept():
    out = gateway_run(window("disconnect"))
    actions = [a for a, _ in out]
    assert actions.count("drop") == 1 and actions.count("reconnect") == 1
    after = out[actions.index("reconnect"):]
    assert after[1] == ("publish", -1)  # the online status first
    sent_ts = [ts for a, ts in out if ts > 0]
    assert sorted(sent_ts) == [START + i * 10_000 for i in range(12)]  # nothing lost, burst after reconnection


def test_gateway_clock_skew_duplicates_out_of_order_and_bursts():
    skewed = [ts for _, ts in gateway_run(window("clock_skew", 600_000)) if ts > 0]
    assert skewed[3] == START + 30_000 + 600_000 and skewed[8] == START + 80_000
    doubled = [ts for _, ts in gateway_run(window("duplicate")) if ts > 0]
    assert len(doubled) == 12 + 4 and doubled.count(START + 40_000) == 2
    shuffled = [ts for _, ts in gateway_run(window("out_of_order", 2)) if ts > 0]
    assert sorted(shuffled) == [START + i * 10_000 for i in range(12)] and shuffled != sorted(shuffled)
    burst = gateway_run(window("burst"))
    per_tick = [sum(1 for a, ts in burst if ts > 0)]
    assert per_tick[0] == 12
    ts = [t for _, t in burst if t > 0]
    assert ts == sorted(ts)  # kept in order, released together at the end of the window
