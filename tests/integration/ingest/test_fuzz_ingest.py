"""A short version of ``python -m bench.fuzz ingest``: 2,000 messages, half of them mutated (U+0000 and control
characters, lone surrogates, huge and deeply nested arrays, NaN/Infinity, duplicate keys, wrong types, oversized
numbers, truncation) and a tenth sent twice, through the real broker, ingest and database. The ingest never
stops; every valid reading and event is stored once; every message with something wrong is dead-lettered once."""

from __future__ import annotations

import random
import time
from urllib.parse import urlsplit

import orjson
import psycopg

from bench.fuzz.mutations import Fleet, expected, stream
from bench.ingest.publisher import RawPublisher
from ingest.batching import RawMessage
from ingest.worker import run as run_ingest
from safewatch.db import one_row
from tests.waiting import wait_until

COUNT_READINGS = "SELECT count(*) FROM readings r JOIN equipment e ON e.id = r.equipment_id WHERE e.gateway_id LIKE %s"
COUNT_EVENTS = "SELECT count(*) FROM events WHERE gateway_id LIKE %s"
DEAD_LETTER_KEYS = "SELECT message_key FROM dead_letters WHERE topic LIKE %s"
MARKER = """
SELECT count(*) FROM elevator_readings r JOIN equipment e ON e.id = r.equipment_id
WHERE e.code = %s AND r.door_cycles = 424242
"""


def test_a_mutated_stream_through_the_ingest(settings, fleet, running, pg_url, uid):
    registry = fleet(60)
    metrics = running(run_ingest, settings)
    sim = Fleet(registry.equipment, registry.gateways)
    now = int(time.time() * 1000)
    messages = stream(random.Random(uid), sim, now, 2_000, bad_share=0.5)
    messages += messages[:200]  # sent again: a redelivery stores nothing new and is counted once
    want_readings, want_events, want_keys = expected(messages, sim, now)
    # Last, a marker: once it is stored, every message before it has been received (one publisher, in order).
    code, gw = next((e["code"], e["gateway_id"]) for e in registry.equipment if e["category"] == "3000")
    league = next(g["league_code"] for g in registry.gateways if g["id"] == gw)
    marker = RawMessage(f"se/v1/{league}/{gw}/telemetry", orjson.dumps(
        {"ts": now + 1, "readings": [{"equipment": code, "values": {"door_cycles": 424242}}]}))
    messages.append(marker)
    url = urlsplit(settings.mqtt.url)
    publisher = RawPublisher(url.hostname or "127.0.0.1", url.port or 1883, f"fuzz-{uid}", window=500)
    try:
        for i in range(0, len(messages), 50):
            publisher.publish_many([(m.topic.encode(), m.payload) for m in messages[i:i + 50]])
        assert publisher.wait_acked(120)
    finally:
        publisher.close()

    def marker_stored() -> bool:
        with psycopg.connect(pg_url) as c:
            return bool(one_row(c.execute(MARKER, (code,)))[0])

    def stored() -> tuple[int, int, set[bytes]]:
        with psycopg.connect(pg_url) as c:
            return (one_row(c.execute(COUNT_READINGS, (f"t{uid}-%",)))[0],
                    one_row(c.execute(COUNT_EVENTS, (f"t{uid}-%",)))[0],
                    {bytes(r[0]) for r in c.execute(DEAD_LETTER_KEYS, (f"se/v1/%/t{uid}-%",)).fetchall()})

    wait_until(marker_stored, bool, timeout=120, what="the marker stored")
    # Then nothing received is waiting or unacknowledged: everything before the marker is committed.
    wait_until(lambda: (metrics.get_sample_value("safewatch_ingest_unacked_messages"),
                        metrics.get_sample_value("safewatch_ingest_queue_depth")), lambda v: v == (0, 0),
               what="every message committed and acknowledged")
    readings, events, keys = stored()
    assert (readings, events) == (len(want_readings) + 1, len(want_events))
    assert keys == want_keys
    rejected = sum(s.value for m in metrics.collect() if m.name == "safewatch_ingest_messages_rejected"
                   for s in m.samples if s.name.endswith("_total"))
    assert rejected >= len(want_keys)  # each counted once at least by one of its reasons
