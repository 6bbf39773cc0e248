"""System alerts told to people (pure parts): who wants one, and how each channel renders it."""

from __future__ import annotations

from datetime import UTC, datetime

from alerts.escalation import ContactView, wants_system_alert
from alerts.notifiers.render import ZERO_TIME, alertmanager_v4, email_message, render_template, summary_line
from alerts.outbox import Recipient
from alerts.system_notices import system_payload

OPENED = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
CLEARED = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)


def _payload(kind: str = "opened") -> dict[str, object]:
    alert = {"id": 7, "source": "timescale_jobs", "key": "policy_compression", "severity": "major",
             "message": "compression jobs failing; run CALL run_job", "details": {"jobs": []}, "opened_at": OPENED,
             "cleared_at": CLEARED if kind == "cleared" else None}
    return system_payload(kind=kind, alert=alert, region="150000",
                          recipient=Recipient("webhook", "http://x/hook", "region duty"))


def test_category_filters_do_not_apply_but_duty_and_severity_do():
    lifts_only = ContactView(True, frozenset({"3000"}), "warning")
    assert wants_system_alert(lifts_only, severity="major")
    assert not wants_system_alert(ContactView(True, None, "critical"), severity="major")
    assert not wants_system_alert(ContactView(False, None, "warning"), severity="critical")


def test_opening_and_clearing_render_as_alertmanager_firing_and_resolved():
    firing = alertmanager_v4(_payload(), external_url="http://sw.example")
    (a,) = firing["alerts"]
    assert firing["status"] == "firing" and a["endsAt"] == ZERO_TIME
    assert a["labels"] == {"alertname": "system.timescale_jobs.policy_compression", "severity": "major",
                           "division_code": "150000", "level": "region", "kind": "system"}
    assert a["generatorURL"] == "http://sw.example/api/v1/system/alerts"
    assert a["fingerprint"] == f"{(1 << 63) | 7:016x}"  # never an equipment alert's
    resolved = alertmanager_v4(_payload("cleared"), external_url="http://sw.example")
    assert resolved["status"] == "resolved" and resolved["alerts"][0]["endsAt"] == CLEARED.isoformat()


def test_sms_and_email_name_the_system_not_an_equipment():
    payload = _payload()
    assert summary_line(payload) == ("[SafeWatch MAJOR] compression jobs failing; run CALL run_job — "
                                     "SafeWatch system @ 150000")
    assert render_template("{summary} {equipment_code}|", payload, idempotency_key="k").endswith(" |")
    mail = email_message(payload, to="ops@example.org", sender="sw@example.org", idempotency_key="sw-s1",
                         external_url="http://sw.example")
    body = mail.get_content()
    assert "SafeWatch system: timescale_jobs / policy_compression" in body
    assert "http://sw.example/api/v1/system/alerts" in body and "equipment" not in body
