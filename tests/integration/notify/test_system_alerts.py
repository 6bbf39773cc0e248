"""System alerts (schema 041) reach people (issue 22 point 5): the real notifier tells the region's contacts
and ``se/v1/alerts/system`` when one opens and when it clears, once each, across a notifier restart.

The rows are written as the ingest's housekeeping writes them (its SQL, as its database role), so the
trigger of schema 046 runs with the grants production gives it."""

from __future__ import annotations

import queue
import threading

import orjson
import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from ingest.timescale_jobs import CLEAR_SYSTEM_ALERTS, OPEN_SYSTEM_ALERT
from safewatch.contract import alert_topic
from tests.integration.notify.conftest import Received, add_contact, query
from tests.services import process_url
from tests.waiting import wait_until

SOURCE = "timescale_jobs"
PENDING_FOR = """
SELECT count(*) FROM outbox WHERE system_alert_id = %s AND delivered_at IS NULL AND expired_at IS NULL
"""
NOTICES_OF = "SELECT kind, fired_at IS NOT NULL FROM system_alert_notices WHERE system_alert_id = %s ORDER BY id"


def _as_ingest(url: str, sql: str, *params: object) -> None:
    with psycopg.connect(process_url(url, "ingest")) as conn:
        conn.execute(sql, params)


def _system(requests: list[Received], key: str) -> list[tuple[str, str]]:
    """(path, status) of the requests about the system alert ``key``."""
    out = []
    for r in requests:
        alert = r.json()["alerts"][0]
        if alert["labels"].get("alertname") == f"system.{SOURCE}.{key}":
            out.append((r.path, r.json()["status"]))
    return out


def test_a_system_alert_is_told_to_the_region_once_when_it_opens_and_once_when_it_clears(
        notify_url, sink, notifier, uid):
    key = f"policy_test_{uid}"
    region = query(notify_url, "SELECT code FROM divisions WHERE level = 'region'")[0][0]
    # Category filters do not apply (every chart is concerned); severity thresholds and the division do.
    add_contact(notify_url, region, "region duty", [("webhook", sink.url("/region"), None)])
    add_contact(notify_url, region, "region lifts", [("webhook", sink.url("/lifts"), None)], categories=["3000"])
    add_contact(notify_url, region, "region critical only", [("webhook", sink.url("/critical"), None)],
                min_severity="critical")
    add_contact(notify_url, "150900", "league duty", [("webhook", sink.url("/league"), None)])
    messages: queue.Queue[bytes] = queue.Queue()
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"system-sub-{uid}")
    client.on_message = lambda _c, _u, msg: messages.put(msg.payload)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(alert_topic("system"), qos=1)
    n = notifier()
    settings = n.settings
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    try:
        assert subscribed.wait(10)
        n.start()
        _as_ingest(notify_url, OPEN_SYSTEM_ALERT, SOURCE, key, "rollup refresh failing; run CALL run_job", "{}")
        got = sink.wait(lambda rs: {p for p, _ in _system(rs, key)} >= {"/region", "/lifts"}, what="the opening")
        (sa_id,), = query(notify_url, "SELECT id FROM system_alerts WHERE key = %s", key)
        body = next(r.json() for r in got if r.path == "/region")
        alert = body["alerts"][0]
        assert body["status"] == "firing" and alert["labels"]["kind"] == "system"
        assert alert["annotations"]["summary"] == "rollup refresh failing; run CALL run_job"
        assert alert["generatorURL"].endswith("/api/v1/system/alerts")
        mqtt = wait_until(lambda: orjson.loads(messages.get(timeout=15)),
                          lambda m: m["alerts"][0]["key"] == key, what="the MQTT opening")
        assert mqtt["kind"] == "system" and mqtt["status"] == "firing" and mqtt["alerts"][0]["id"] == sa_id

        # Re-seen while it lasts: nothing new to tell. The notifier restarts: the opening is not told again.
        _as_ingest(notify_url, OPEN_SYSTEM_ALERT, SOURCE, key, "rollup refresh failing; run CALL run_job", "{}")
        wait_until(lambda: query(notify_url, PENDING_FOR, sa_id)[0][0], lambda c: c == 0, what="opening delivered")
        n.stop()
        n.start()
        _as_ingest(notify_url, CLEAR_SYSTEM_ALERTS, SOURCE, [])
        sink.wait(lambda rs: ("/region", "resolved") in _system(rs, key) and ("/lifts", "resolved") in _system(rs, key),
                  what="the clearing")
        mqtt = wait_until(lambda: orjson.loads(messages.get(timeout=15)),
                          lambda m: m["alerts"][0]["key"] == key, what="the MQTT clearing")
        assert mqtt["status"] == "resolved" and mqtt["alerts"][0]["cleared_at"] is not None
        wait_until(lambda: query(notify_url, PENDING_FOR, sa_id)[0][0], lambda c: c == 0, what="clearing delivered")
        # Restarted once more with nothing to do: still nothing repeated.
        n.stop()
        n.start()
        wait_until(lambda: query(notify_url, PENDING_FOR, sa_id)[0][0], lambda c: c == 0, what="nothing pending")
    finally:
        client.disconnect()
        client.loop_stop()
    told = sorted(_system(sink.requests, key))
    assert told == [("/lifts", "firing"), ("/lifts", "resolved"), ("/region", "firing"), ("/region", "resolved")]
    assert query(notify_url, NOTICES_OF, sa_id) == [("opened", True), ("cleared", True)]
    rows = query(notify_url, "SELECT channel, target FROM outbox WHERE system_alert_id = %s ORDER BY id", sa_id)
    assert rows.count(("mqtt", "se/v1/alerts/system")) == 2 and len(rows) == 6
