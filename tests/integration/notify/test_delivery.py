"""Delivery through the outbox to real receivers: a receiver outage, grouping of a flood, the SMS
template, e-mail to a real SMTP server (aiosmtpd), MQTT alert topics on the real broker, expiry."""

from __future__ import annotations

import email
import email.policy
import os
import queue
import threading
import time

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from safewatch.contract import alert_topic
from safewatch.demo import free_port
from tests.integration.notify.conftest import add_contact, make_site, open_alert, open_alerts, query, set_policy
from tests.waiting import wait_until

# The outage is ten minutes; the logic does not depend on its length (bench/notify runs the real one).
OUTAGE_S = float(os.environ.get("SAFEWATCH_TEST_OUTAGE_S", "3"))
ATTEMPTS_OF = """
SELECT o.idempotency_key, array_agg(a.outcome ORDER BY a.id) FROM outbox o JOIN outbox_attempts a ON a.outbox_id = o.id
WHERE o.target = %s GROUP BY o.idempotency_key
"""


@pytest.fixture(autouse=True)
def _banner_only(notify_url):
    for severity in ("critical", "major", "minor", "warning"):
        set_policy(notify_url, severity, open_levels=["banner"], max_level="banner", banner_ack_s=3600,
                   league_ack_s=3600)


def test_a_receiver_down_for_an_outage_receives_everything_once_afterwards(notify_url, nsettings, sink, notifier):
    sites = [make_site(notify_url, "150121") for _ in range(20)]
    url = sink.url("/hook")
    add_contact(notify_url, "150121", "duty", [("webhook", url, None)])
    sink.down()
    running = notifier().start()
    started = time.monotonic()
    alerts = [open_alert(notify_url, s.equipment[0]) for s in sites]
    # Every notification is tried, and fails, while the receiver is down.
    wait_until(lambda: query(notify_url, ATTEMPTS_OF, url), lambda rows: len(rows) == 20 and all(
        "failed" in outcomes for _, outcomes in rows), timeout=OUTAGE_S + 10, what="failed attempts during the outage")
    wait_until(lambda: time.monotonic() - started, lambda s: s >= OUTAGE_S, timeout=OUTAGE_S + 5, what="outage")
    sink.up()
    got = sink.wait(lambda rs: len(rs) >= 20, timeout=15, what="all notifications after the outage")
    keys = [r.headers["Idempotency-Key"] for r in got]
    assert len(keys) == len(set(keys)) == 20  # each once
    assert sorted(int(r.json()["alerts"][0]["fingerprint"], 16) for r in got) == sorted(alerts)
    # The receiver has them; the notifier records each delivery just after.
    attempts = dict(wait_until(lambda: query(notify_url, ATTEMPTS_OF, url), lambda rows: all(
        outcomes[-1] == "delivered" for _, outcomes in rows), timeout=10, what="deliveries recorded"))
    assert all(outcomes.count("delivered") == 1 for outcomes in attempts.values())
    assert all(outcomes[0] == "failed" for outcomes in attempts.values())  # every attempt is logged
    sent = running.registry.get_sample_value
    assert sent("safewatch_alerts_notifications_sent_total", {"channel": "webhook", "outcome": "delivered"}) == 20
    assert sent("safewatch_alerts_notifications_sent_total", {"channel": "webhook", "outcome": "failed"}) >= 20
    assert sent("safewatch_alerts_timers_fired_total", {"kind": "open"}) == 20


def test_a_flood_at_one_site_sends_one_lead_and_one_grouped_follow_up(notify_url, nsettings, sink, notifier):
    settings = nsettings.model_copy(update={"notifier": nsettings.notifier.model_copy(
        update={"group_interval_s": 3.0})})
    site = make_site(notify_url, "150122", n=60)
    add_contact(notify_url, "150122", "duty", [("webhook", sink.url("/flood"), None)])
    notifier(settings).start()
    alerts = open_alerts(notify_url, site.equipment, severity="minor")
    got = sink.wait(lambda rs: sum(len(r.json()["alerts"]) for r in rs) >= 60, timeout=15, what="the whole flood")
    assert len(got) == 2, [len(r.json()["alerts"]) for r in got]
    carried = [int(a["fingerprint"], 16) for r in got for a in r.json()["alerts"]]
    assert sorted(carried) == sorted(alerts)  # every alert, once
    follow = got[1].json()
    assert follow["groupLabels"]["site"] == f"gw:{site.gateway_id}"
    assert follow["commonLabels"]["gateway_id"] == site.gateway_id
    # The follow-up waited for the group interval after the lead was written (however late the lead arrived
    # on a busy machine).
    (lead_written,) = query(notify_url, "SELECT extract(epoch FROM min(created_at)) FROM outbox WHERE target = %s",
                            sink.url("/flood"))[0]
    assert got[1].at - float(lead_written) >= 2.5


def test_an_sms_gateway_is_a_webhook_with_a_template(notify_url, sink, notifier):
    site = make_site(notify_url, "150123")
    template = '{"to": "13800000000", "text": "{summary}", "ref": "{idempotency_key}"}'
    add_contact(notify_url, "150123", "rescue team", [("sms", sink.url("/sms"), template)], kind="emergency_team",
                categories=["3000"])
    notifier().start()
    open_alert(notify_url, site.equipment[0], severity="critical", rule_key="event.passenger_trapped")
    (req,) = sink.wait(lambda rs: len(rs) >= 1, what="sms")
    body = req.json()
    assert body["to"] == "13800000000" and "event.passenger_trapped" in body["text"]
    assert body["ref"] == req.headers["Idempotency-Key"]


def test_email_reaches_a_real_smtp_server(notify_url, nsettings, notifier):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import Envelope

    received: queue.Queue[Envelope] = queue.Queue()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.put(envelope)
            return "250 OK"

    port = free_port()  # aiosmtpd checks readiness by connecting, so it needs a real port number
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = nsettings.model_copy(update={"notifier": nsettings.notifier.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": port})})
        site = make_site(notify_url, "150124", category="1000")
        add_contact(notify_url, "150124", "boiler inspector", [("email", "inspector@example.cn", None)])
        notifier(settings).start()
        alert_id = open_alert(notify_url, site.equipment[0], severity="major", rule_key="boiler.overpressure")
        envelope = received.get(timeout=15)
        assert isinstance(envelope.content, bytes)  # as received: aiosmtpd decodes nothing by default
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert envelope.rcpt_tos == ["inspector@example.cn"]
        assert "boiler.overpressure" in mail["Subject"]
        assert f"/api/v1/alerts/{alert_id}" in mail.get_content()
        key = query(notify_url, "SELECT idempotency_key FROM outbox WHERE channel = 'email' AND alert_id = %s",
                    alert_id)[0][0]
        assert mail["Message-ID"] == f"<{key}@safewatch>"
    finally:
        controller.stop()


def test_mqtt_alert_topic_of_the_division_on_the_real_broker(notify_url, nsettings, notifier, uid):
    site = make_site(notify_url, "150125")
    topic = alert_topic("150125")
    messages: queue.Queue[bytes] = queue.Queue()
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"alert-sub-{uid}")
    client.on_message = lambda _c, _u, msg: messages.put(msg.payload)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.connect(nsettings.mqtt.host, nsettings.mqtt.port)
    client.loop_start()
    try:
        assert subscribed.wait(10)
        notifier().start()
        alert_id = open_alert(notify_url, site.equipment[0], severity="major")
        body = orjson.loads(messages.get(timeout=15))
        assert body["alerts"][0]["id"] == alert_id and body["division_code"] == "150125"
        assert body["idempotency_key"].startswith("sw-") and body["status"] == "firing"
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_notification_past_its_expiry_is_given_up_with_the_reason_logged(notify_url, nsettings, sink, notifier):
    settings = nsettings.model_copy(update={"notifier": nsettings.notifier.model_copy(update={"expires_s": 2})})
    site = make_site(notify_url, "150221")
    url = sink.url("/never")
    add_contact(notify_url, "150221", "duty", [("webhook", url, None)])
    sink.down()
    notifier(settings).start()
    open_alert(notify_url, site.equipment[0])
    rows = wait_until(lambda: query(notify_url, ATTEMPTS_OF, url), lambda r: len(r) == 1 and r[0][1][-1] == "expired",
                      timeout=15, what="expiry")
    assert rows[0][1][0] == "failed"
    (error,) = query(notify_url, "SELECT a.error FROM outbox_attempts a JOIN outbox o ON o.id = a.outbox_id "
                                 "WHERE o.target = %s AND a.outcome = 'expired'", url)[0]
    assert "expired before delivery" in error and "ConnectError" in error


def test_a_receiver_answering_nul_bytes_is_a_failed_attempt_and_stops_nothing(notify_url, sink, notifier):
    """Issue 21: one bad answer must not stop the notifier. Its text (NUL, invalid UTF-8) is stored escaped."""
    site = make_site(notify_url, "150222", n=2)
    bad, good = sink.url("/nul"), sink.url("/ok")
    sink.answers["/nul"] = (500, b"gateway \x00 broke \xed\xa0\x80")
    add_contact(notify_url, "150222", "duty", [("webhook", bad, None), ("webhook", good, None)])
    notifier().start()
    open_alert(notify_url, site.equipment[0])
    failed = wait_until(lambda: query(notify_url, "SELECT a.error FROM outbox_attempts a JOIN outbox o ON o.id = "
                                                  "a.outbox_id WHERE o.target = %s AND a.outcome = 'failed'", bad),
                        lambda rows: len(rows) >= 1, timeout=15, what="the failed attempt recorded")
    assert "HTTP 500" in failed[0][0] and "\\x00" in failed[0][0]
    open_alert(notify_url, site.equipment[1])  # the notifier still delivers, each notification once
    wait_until(lambda: query(notify_url, ATTEMPTS_OF, good), lambda rows: len(rows) == 2 and all(
        o == ["delivered"] for _, o in rows), timeout=15, what="both good deliveries recorded once")
    assert len(sink.at("/ok")) == 2
