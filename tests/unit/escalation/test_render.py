"""Rendering notifications (pure): Alertmanager v4 bodies, SMS templates, e-mail, MQTT."""

from __future__ import annotations

import json

from alerts.notifiers.render import ZERO_TIME, alertmanager_v4, email_message, mqtt_message, render_template


def _alert(i: int, **kw: object) -> dict[str, object]:
    return {"id": i, "equipment_code": f"31101500120200000{i}", "category": "3000",
            "rule_key": "event.passenger_trapped",
            "severity": "critical", "state": "active_unack", "level": "region", "division_code": "150781",
            "league_code": "150700", "message": '困人 "passenger_trapped"', "metric": None, "value": None,
            "limit_value": None, "gateway_id": "gw-1", "unit_name": "满洲里某小区物业", "address": "满洲里市 1 号",
            "opened_at": "2026-11-25T08:00:00+00:00", "cleared_at": None, "closed_at": None, **kw}


def _payload(status: str = "firing", alerts: list[dict[str, object]] | None = None) -> dict[str, object]:
    return {"status": status, "group_key": "gw:gw-1|" + status, "receiver": "满洲里 duty", "level": "banner",
            "division_code": "150781", "template": None, "alerts": alerts or [_alert(1), _alert(2)]}


def test_alertmanager_v4_shape():
    body = alertmanager_v4(_payload(), external_url="http://sw.example")
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                         "commonLabels", "commonAnnotations", "externalURL", "alerts"}
    assert body["version"] == "4" and body["status"] == "firing" and body["truncatedAlerts"] == 0
    assert body["groupLabels"] == {"site": "gw:gw-1", "division_code": "150781"}
    assert body["commonLabels"]["alertname"] == "event.passenger_trapped"
    assert "equipment_code" not in body["commonLabels"]  # differs between the two alerts
    first = body["alerts"][0]
    assert set(first) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
    assert first["endsAt"] == ZERO_TIME and first["generatorURL"] == "http://sw.example/api/v1/alerts/1"
    assert first["fingerprint"] == "0000000000000001"


def test_resolved_alerts_carry_their_end():
    body = alertmanager_v4(_payload("resolved", [_alert(3, closed_at="2026-11-25T08:09:00+00:00")]),
                           external_url="http://x")
    assert body["status"] == "resolved" and body["alerts"][0]["endsAt"] == "2026-11-25T08:09:00+00:00"


def test_sms_template_escapes_values_and_keeps_unknown_placeholders():
    text = render_template('{"text": "{message}", "n": {count}, "x": "{nope}"}', _payload(), idempotency_key="k1")
    doc = json.loads(text)
    assert doc == {"text": '困人 "passenger_trapped"', "n": 2, "x": "{nope}"}


def test_email_uses_the_idempotency_key_as_message_id():
    msg = email_message(_payload(), to="a@example.cn", sender="sw@example.cn", idempotency_key="sw-t1-email-ab",
                        external_url="http://sw.example")
    assert msg["Message-ID"] == "<sw-t1-email-ab@safewatch>"
    assert "CRITICAL" in msg["Subject"] and "(+1 more at this site)" in msg["Subject"]
    assert "http://sw.example/api/v1/alerts/2" in msg.get_content()


def test_mqtt_message_drops_private_fields():
    doc = json.loads(mqtt_message({**_payload(), "template": "secret {summary}"}, idempotency_key="k"))
    assert doc["idempotency_key"] == "k" and "template" not in doc and "receiver" not in doc
