"""A short version of ``python -m bench.fuzz ingest``: 2,000 messages, half of them mutated (U+0000 and control
characters, lone surrogates, huge and deeply nested arrays, NaN/Infinity, duplicate keys, wrong types, oversized
numbers, truncation) and a tenth sent twice, through the real broker, ingest and database. The ingest never
stops; every valid reading and event is stored once; every message with something wrong is dead-lettered once."""

from __future__ import annotations

import random
import time
from urllib.parse import urlsplit

import psycopg

from bench.fuzz.mutations import Fleet, expected, stream
from bench.ingest.publisher import RawPublisher
from ingest.worker import run as run_ingest
from tests.waiting import wait_until

COUNT_READINGS = "SELECT count(*) FROM readings r JOIN equipment e ON e.id = r.equipment_id WHERE e.gateway_id LIKE %s"
COUNT_EVENTS = "SELECT count(*) FROM events WHERE gateway_id LIKE %s"
DEAD_LETTER_KEYS = "SELECT message_key FROM dead_letters WHERE topic LIKE %s"


def test_a_mutated_stream_through_the_ingest(settings, fleet, running, pg_url, uid):
    registry = fleet(60)
    metrics = running(run_ingest, settings)
    sim = Fleet(registry.equipment, registry.gateways)
    now = int(time.time() * 1000)
    messages = stream(random.Random(uid), sim, now, 2_000, bad_share=0.5)
    messages += messages[:200]  # sent again: a redelivery stores nothing new and is counted once
    want_readings, want_events, want_keys = expected(messages, sim, now)
    url = urlsplit(settings.mqtt.url)
    publisher = RawPublisher(url.hostname or "127.0.0.1", url.port or 1883, f"fuzz-{uid}", window=500)
    try:
        for i in range(0, len(messages), 50):
            publisher.publish_many([(m.topic.encode(), m.payload) for m in messages[i:i + 50]])
        assert publisher.wait_acked(120)
    finally:
        publisher.close()

    def stored() -> tuple[int, int, set[bytes]]:
        with psycopg.connect(pg_url) as c:
            return (c.execute(COUNT_READINGS, (f"t{uid}-%",)).fetchone()[0],
                    c.execute(COUNT_EVENTS, (f"t{uid}-%",)).fetchone()[0],
                    {bytes(r[0]) for r in c.execute(DEAD_LETTER_KEYS, (f"se/v1/%/t{uid}-%",)).fetchall()})

    # Everything acknowledged (acks go out in receive order, after commit), then counted exactly.
    wait_until(lambda: metrics.get_sample_value("safewatch_ingest_messages_stored_total"),
               lambda n: n >= len(messages), timeout=120, what="every message committed and acknowledged")
    readings, events, keys = stored()
    assert (readings, events) == (len(want_readings), len(want_events))
    assert keys == want_keys
    rejected = sum(s.value for m in metrics.collect() if m.name == "safewatch_ingest_messages_rejected"
                   for s in m.samples if s.name.endswith("_total"))
    assert rejected >= len(want_keys)  # each counted once at least by one of its reasons
