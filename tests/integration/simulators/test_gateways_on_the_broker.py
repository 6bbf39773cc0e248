"""Simulated gateways on the real broker: retained status, last will on a dropped connection, replay of a CSV."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from safewatch.contract import Limits, decode_status, decode_telemetry
from safewatch.settings import Settings
from simulators.faults import Fault
from simulators.fleet import Fleet
from simulators.replay import parse_mapping, plan_replay, read_csv, replay, shift_offset
from simulators.simulation import SimEquipment


@pytest.fixture
def listen(settings: Settings) -> Iterator:
    """``listen(filter)`` → a queue of (topic, payload, retained) from a real subscription."""
    clients = []

    def make(topic_filter: str) -> queue.Queue:
        got: queue.Queue = queue.Queue()
        subscribed: queue.Queue = queue.Queue()
        client = paho.Client(CallbackAPIVersion.VERSION2)
        client.on_message = lambda c, u, m: got.put((m.topic, m.payload, m.retain))
        client.on_subscribe = lambda *a: subscribed.put(True)
        client.on_connect = lambda c, *a: c.subscribe(topic_filter, qos=1)
        client.connect(settings.mqtt.host, settings.mqtt.port)
        client.loop_start()
        clients.append(client)
        subscribed.get(timeout=10)
        return got

    yield make
    for client in clients:
        client.disconnect()
        client.loop_stop()


def next_on(q: queue.Queue, topic_suffix: str, timeout: float = 10.0) -> tuple[str, bytes, bool]:
    deadline = time.monotonic() + timeout
    while True:
        topic, payload, retained = q.get(timeout=max(0.01, deadline - time.monotonic()))
        if topic.endswith(topic_suffix):
            return topic, payload, retained


def test_gateway_status_is_retained_and_its_last_will_says_offline_when_it_drops(settings, uid, listen):
    gw = f"t{uid}-gw"
    equipment = [SimEquipment(f"31101500020200{i}{uid[:3]}", "3000", {"rated_speed": 1.0, "floors": 6.0}, gw,
                              "150100") for i in range(3)]
    fleet = Fleet(settings, equipment, seed=2, client_prefix=f"sim-{uid}")
    start = int(time.time() * 1000) - 120_000
    fleet.connect(start)
    assert fleet.flush() == 0
    limits = Limits(now_ms=int(time.time() * 1000))
    try:
        # A subscriber arriving later is told at once that the gateway is online (retained).
        statuses = listen(f"se/v1/150100/{gw}/status")
        _, payload, retained = next_on(statuses, "/status")
        assert retained and decode_status(payload, limits).state == "online"
        telemetry = listen(f"se/v1/150100/{gw}/telemetry")
        drop = Fault(gw, "disconnect", start + 30_000, start + 60_000, scope="gateway")
        for i in range(1, 10):
            fleet.tick(start + i * 10_000, 10.0, [drop])
            if i == 3:  # the connection has just dropped: the broker publishes the will
                _, payload, _ = next_on(statuses, "/status")
                assert decode_status(payload, limits).state == "offline"
        _, payload, _ = next_on(statuses, "/status")
        assert decode_status(payload, limits).state == "online"
        assert fleet.flush() == 0
        # Nothing lost over the outage: what was kept came in a burst after the reconnection. (QoS 1 is at
        # least once: a message unacknowledged when the connection dropped is sent again, so wait for the set.)
        expected = {start + i * 10_000 for i in range(1, 10)}
        stamps: set[int] = set()
        while stamps != expected:
            _, payload, _ = next_on(telemetry, "/telemetry")
            msg = decode_telemetry(payload, limits)
            assert {r.equipment for r in msg.readings} == {e.code for e in equipment}  # one message, all equipment
            stamps.add(msg.readings[0].ts_ms)
            assert stamps <= expected, [(x - start) // 1000 for x in sorted(stamps)]
    finally:
        fleet.mux.publish(gw, f"se/v1/150100/{gw}/status", b"", retain=True)  # leave no retained status behind
        fleet.close()


def test_replay_publishes_a_csv_through_the_contract_shifted_to_now(settings, uid, listen, tmp_path: Path):
    gw = f"t{uid}-rp"
    csv_file = tmp_path / "boiler.csv"
    csv_file.write_text("time,p_mpa,level_mm,note\n"
                        "2024-01-15 08:00:00,1.02,-3,start\n"
                        "2024-01-15 08:00:10,1.05,,\n"
                        "2024-01-15 08:00:20,1.21,-40,alarm\n")
    points = plan_replay(read_csv(csv_file), time_column="time",
                         mapping=parse_mapping(["p_mpa=drum_pressure", "level_mm=drum_level"], "1000"))
    assert [p.values for p in points] == [{"drum_pressure": 1.02, "drum_level": -3.0}, {"drum_pressure": 1.05},
                                          {"drum_pressure": 1.21, "drum_level": -40.0}]
    now = int(time.time() * 1000)
    shift = shift_offset(points, now_ms=now, speed=0)
    got = listen(f"se/v1/150100/{gw}/telemetry")
    boiler = SimEquipment(f"1100150002024{uid[:5]}", "1000", {}, gw, "150100")
    assert replay(settings, equipment=boiler, points=points, speed=0, shift_ms=shift, client_prefix=f"rp-{uid}") == 3
    received = [orjson.loads(next_on(got, "/telemetry")[1]) for _ in range(3)]
    assert [r["readings"][0]["values"] for r in received] == [p.values for p in points]
    assert [r["ts"] for r in received] == [now - 20_000, now - 10_000, now]  # spacing kept, ending now
    assert all(r["readings"][0]["equipment"] == boiler.code for r in received)


def test_replay_rejects_what_it_cannot_read(tmp_path: Path):
    with pytest.raises(ValueError, match="not a catalogue metric"):
        parse_mapping(["p=pressure"])
    with pytest.raises(ValueError, match="elevator metric, not one of category 1000"):
        parse_mapping(["v=speed"], "1000")
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,v\n1700000000,1.0\n1700000010,fast\n")
    with pytest.raises(ValueError, match=r"row 3, column 'v': 'fast' is not a number"):
        plan_replay(read_csv(bad), time_column="ts", mapping={"v": "speed"})
    assert plan_replay(read_csv(bad), time_column="ts", mapping={})[:1] == []


def test_a_fleet_loaded_from_the_registry_keeps_its_gateway_bindings(fleet, pg_url, uid):
    import psycopg

    from simulators.fleet import load_fleet
    from simulators.simulation import Simulation

    registry = fleet(30)
    with psycopg.connect(pg_url) as conn:
        loaded = load_fleet(conn, gateway_prefix=f"t{uid}")
    assert {(e.code, e.gateway_id, e.variety) for e in loaded} == {
        (e["code"], e["gateway_id"], e["variety"]) for e in registry.equipment}
    leagues = {g["id"]: g["league_code"] for g in registry.gateways}
    sent = Simulation(loaded, seed=1).tick(int(time.time() * 1000), 10.0)
    assert {(o.gateway_id, o.topic.split("/")[2]) for o in sent} == {
        (e["gateway_id"], leagues[e["gateway_id"]]) for e in registry.equipment}
