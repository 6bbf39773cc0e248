"""A graceful restart of the alert worker keeps the engine's state: a breach half-way through its on-delay
before the restart raises at the same event time as if the worker had never stopped."""

from __future__ import annotations

import threading
import time

import orjson
import psycopg
from prometheus_client import CollectorRegistry

from alerts.worker import run as run_alerts
from safewatch.contract import Kind, build_topic
from safewatch.mqtt import connect_publisher
from tests.waiting import wait_until


def _start(settings):
    stop, ready, registry = threading.Event(), threading.Event(), CollectorRegistry()
    thread = threading.Thread(target=run_alerts, args=(settings,),
                              kwargs={"stop": stop, "registry": registry, "ready": ready}, daemon=True)
    thread.start()
    assert ready.wait(20), "the alert worker did not subscribe"
    return stop, thread, registry


def test_restart_keeps_a_pending_on_delay(settings, fleet, pg_url, uid):
    registry = fleet(40, seed=19)
    vessel = next(e for e in registry.equipment if e["category"] == "2000")
    gw = next(g for g in registry.gateways if g["id"] == vessel["gateway_id"])
    topic = build_topic(gw["league_code"], gw["id"], Kind.TELEMETRY)
    high = 0.95 * vessel["rated"]["design_pressure"]  # over the high limit (0.9375 × design), 5 s on-delay
    t0 = int(time.time() * 1000) - 60_000
    client = connect_publisher(settings.mqtt, client_id=f"pub-{uid}")

    def publish(ts: int) -> None:
        payload = orjson.dumps({"ts": ts, "readings": [{"equipment": vessel["code"],
                                                         "values": {"vessel_pressure": high}}]})
        client.publish(topic, payload, qos=1).wait_for_publish(10)

    def evaluated(reg: CollectorRegistry) -> float:
        return reg.get_sample_value("safewatch_alerts_readings_evaluated_total") or 0.0

    stop, thread, reg = _start(settings)
    publish(t0)  # the breach starts: on-delay pending
    wait_until(lambda: evaluated(reg), lambda n: n >= 1, what="the first reading evaluated")
    stop.set()
    thread.join(30)
    assert not thread.is_alive()

    stop, thread, reg = _start(settings)
    try:
        publish(t0 + 5_000)  # 5 s later in event time: the on-delay is met across the restart
        wait_until(lambda: evaluated(reg), lambda n: n >= 1, what="the second reading evaluated")
        with psycopg.connect(pg_url) as c:
            row = c.execute("SELECT (extract(epoch FROM a.opened_at) * 1000)::bigint FROM alerts a "
                            "JOIN equipment e ON e.id = a.equipment_id "
                            "WHERE e.code = %s AND a.rule_key = 'vessel.pressure.high'", (vessel["code"],)).fetchone()
        assert row is not None and row[0] == t0 + 5_000
    finally:
        stop.set()
        thread.join(30)
        client.disconnect()
        client.loop_stop()
