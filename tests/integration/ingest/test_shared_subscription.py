"""Two ingest workers share one stream (MQTT v5 shared subscription): every reading stored once, none lost."""

from __future__ import annotations

import time

import psycopg

from ingest.worker import run as run_ingest
from safewatch.contract import Kind, build_topic, encode_telemetry
from safewatch.mqtt import connect_publisher
from safewatch.settings import IngestSettings
from tests.waiting import wait_until

STORED_OF_GATEWAYS = """
SELECT e.code, m.key, (extract(epoch FROM r.time) * 1000)::bigint
FROM readings r JOIN equipment e ON e.id = r.equipment_id JOIN metrics m ON m.id = r.metric_id
WHERE e.gateway_id LIKE %s
"""
VALUES = {"3000": {"speed": 1.0, "floor": 3.0}, "1000": {"drum_pressure": 0.8, "drum_level": 5.0},
          "2000": {"vessel_pressure": 0.6, "vessel_temp": 40.0}}


def test_two_workers_split_one_stream_without_loss_or_duplicates(settings, fleet, running, pg_url, uid):
    registry = fleet(60)
    league = {g["id"]: g["league_code"] for g in registry.gateways}
    metrics = []
    for n in (1, 2):
        worker = settings.model_copy(update={
            "ingest": IngestSettings(worker_id=f"ingest-{uid}-{n}", share_group=f"ingest-{uid}", metrics_port=None,
                                     batch_max_ms=20),
            "mqtt": settings.mqtt.model_copy(update={"shared_subscriptions": True})})
        metrics.append(running(run_ingest, worker))

    client = connect_publisher(settings.mqtt, client_id=f"pub-{uid}")
    start = int(time.time() * 1000) - 30_000
    sent: set[tuple[str, str, int]] = set()
    infos = []
    for tick in range(10):  # 10 ticks x 60 equipment, one message each: 600 messages, 1,200 readings
        ts = start + tick * 1000
        for e in registry.equipment:
            values = VALUES[e["category"]]
            topic = build_topic(league[e["gateway_id"]], e["gateway_id"], Kind.TELEMETRY)
            infos.append(client.publish(topic, encode_telemetry({e["code"]: values}, ts), qos=1))
            sent |= {(e["code"], k, ts) for k in values}
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()

    def stored() -> list[tuple[str, str, int]]:
        with psycopg.connect(pg_url) as c:
            return c.execute(STORED_OF_GATEWAYS, (f"t{uid}-%",)).fetchall()

    rows = wait_until(stored, lambda r: len(r) >= len(sent), what="every reading stored")
    assert len(rows) == len(set(rows)) == len(sent) and set(rows) == sent

    # The workers subscribe to every device topic of the shared test broker, where other engineers' tests
    # publish too; only this test's equipment is in this database, so "written" counts this stream alone.
    def written_per_worker() -> list[float]:  # counted right after each commit, so wait for them too
        return [m.get_sample_value("safewatch_ingest_readings_written_total") or 0.0 for m in metrics]

    written = wait_until(written_per_worker, lambda w: sum(w) >= len(sent), what="writes counted")
    # Both took a share, together exactly what was sent, and neither saw a reading twice.
    assert all(w > 0 for w in written), written
    assert sum(written) == len(sent)
    assert sum(m.get_sample_value("safewatch_ingest_readings_duplicate_total") for m in metrics) == 0
