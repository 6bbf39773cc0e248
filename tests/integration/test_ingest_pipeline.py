"""Ingest through the real broker into the real database: counted exactly, bad input dead-lettered."""

from __future__ import annotations

import time

import orjson
import psycopg

from ingest.worker import run as run_ingest
from safewatch.contract import Kind, build_topic
from safewatch.db import one_row
from safewatch.mqtt import connect_publisher
from simulators.fleet import Fleet, SimEquipment
from tests.waiting import wait_until

COUNT_READINGS_OF_GATEWAYS = """
SELECT count(*) FROM readings r JOIN equipment e ON e.id = r.equipment_id WHERE e.gateway_id LIKE %s
"""
DEAD_LETTERS_OF = "SELECT reason, detail FROM dead_letters WHERE topic LIKE %s ORDER BY id"


def _sim(registry) -> list[SimEquipment]:
    league = {g["id"]: g["league_code"] for g in registry.gateways}
    return [SimEquipment(e["code"], e["category"], e["rated"], e["gateway_id"], league[e["gateway_id"]])
            for e in registry.equipment]


def test_every_reading_is_stored_once(settings, fleet, running, pg_url, uid):
    registry = fleet(60)
    running(run_ingest, settings)
    sim = Fleet(settings, _sim(registry), seed=3, client_prefix=f"sim-{uid}")
    sim.connect()
    start = int(time.time() * 1000) - 60_000
    for tick in range(10):
        sim.tick(start + tick * 1000, 1.0, [])
    # A redelivered copy of the first tick: it must not be stored twice.
    sim.tick(start, 1.0, [])
    assert sim.flush() == 0
    sim.close()
    expected = sum(len(sim.models[e["code"]].step(0, 0, ()))  # metrics per equipment
                   for e in registry.equipment) * 10

    def stored() -> int:
        with psycopg.connect(pg_url) as c:
            return one_row(c.execute(COUNT_READINGS_OF_GATEWAYS, (f"t{uid}-%",)))[0]

    assert wait_until(stored, lambda n: n >= expected, what="all readings stored") == expected


def test_bad_input_is_dead_lettered_and_the_rest_kept(settings, fleet, running, pg_url, uid):
    registry = fleet(25)
    running(run_ingest, settings)
    eq = next(e for e in registry.equipment if e["category"] == "3000")
    other_gw = next(g for g in registry.gateways if g["id"] != eq["gateway_id"])
    gw = next(g for g in registry.gateways if g["id"] == eq["gateway_id"])
    topic = build_topic(gw["league_code"], gw["id"], Kind.TELEMETRY)
    now = int(time.time() * 1000)
    good = {"equipment": eq["code"], "values": {"speed": 1.0, "floor": 3}}
    messages = [
        (topic, b"{not json"),
        (topic, orjson.dumps({"ts": now, "readings": [{"equipment": "999999999999999999", "values": {"speed": 1}}]})),
        (topic, orjson.dumps({"ts": now, "readings": [{"equipment": eq["code"], "values": {"warp_factor": 9}}]})),
        (topic, orjson.dumps({"ts": now, "readings": [{"equipment": eq["code"], "values": {"speed": 1e9}}]})),
        (topic, orjson.dumps({"ts": now, "readings": [{"equipment": eq["code"], "values": {"speed": "fast"}}]})),
        (topic, orjson.dumps({"ts": now + 86_400_000, "readings": [good]})),
        (topic, b"x" * (settings.ingest.max_payload_bytes + 1)),
        (build_topic(other_gw["league_code"], other_gw["id"], Kind.TELEMETRY),
         orjson.dumps({"ts": now, "readings": [good]})),
        (topic, orjson.dumps({"ts": now, "readings": [good], "firmware": "1.2"})),  # good, unknown field kept
    ]
    client = connect_publisher(settings.mqtt, client_id=f"bad-{uid}")
    infos = [client.publish(t, p, qos=1) for t, p in messages]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()

    def dead() -> list[tuple[str, str]]:
        with psycopg.connect(pg_url) as c:
            return c.execute(DEAD_LETTERS_OF, (f"se/v1/%/t{uid}-%",)).fetchall()

    rows = wait_until(dead, lambda r: len(r) >= 8, what="eight dead letters")
    assert sorted(r[0] for r in rows) == sorted([
        "malformed_payload", "unknown_equipment", "unknown_metric", "value_out_of_range", "malformed_payload",
        "bad_timestamp", "payload_too_large", "equipment_not_bound_to_gateway"])
    assert any("fix the binding" in detail for _, detail in rows)

    def stored() -> int:
        with psycopg.connect(pg_url) as c:
            return one_row(c.execute("SELECT count(*) FROM readings r JOIN equipment e ON e.id = r.equipment_id "
                                     "WHERE e.code = %s", (eq["code"],)))[0]

    assert wait_until(stored, lambda n: n >= 2, what="the good message stored") == 2  # speed and floor
