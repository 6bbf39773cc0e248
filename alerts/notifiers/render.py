"""Rendering notifications (pure): the outbox payload → Alertmanager v4 JSON, SMS text, e-mail, MQTT.

The outbox payload, written by the notifier and grown by grouping::

    {"status": "firing" | "resolved", "group_key": "gw:…|firing", "receiver": "contact name",
     "level": "banner", "division_code": "150781", "template": null | "SMS template",
     "alerts": [{"id", "equipment_code", "category", "rule_key", "severity", "state", "level",
                 "division_code", "league_code", "message", "metric", "value", "limit_value",
                 "opened_at", "cleared_at", "closed_at", "gateway_id", "unit_name", "address"}, …]}

A system alert (schema 041: SafeWatch itself is faulty, e.g. a TimescaleDB job fails) travels in the same
shape with ``"kind": "system"`` on the payload and ``"system": true, "source", "key", "details"`` on its
alert; it has no equipment (``equipment_code`` null) and its ``id`` is the system alert's.

Webhook bodies follow Alertmanager's webhook payload version 4, so receivers written for
Alertmanager (and its SMS/IM bridges) work unchanged; the idempotency key travels in the
``Idempotency-Key`` header (and in ``groupKey``'s suffix is NOT relied upon).
"""

from __future__ import annotations

import json
import re
from email.message import EmailMessage
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "no end yet"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_LABEL_KEYS = ("rule_key", "severity", "equipment_code", "category", "division_code", "league_code", "level")


def _labels(alert: dict[str, Any]) -> dict[str, str]:
    labels = {"alertname": str(alert["rule_key"])}
    for key in _LABEL_KEYS[1:]:
        if alert.get(key) is not None:
            labels[key] = str(alert[key])
    if alert.get("gateway_id"):
        labels["gateway_id"] = str(alert["gateway_id"])
    if alert.get("system"):
        labels["kind"] = "system"
    return labels


def _link(alert: dict[str, Any], external_url: str) -> str:
    base = external_url.rstrip("/")
    return f"{base}/api/v1/system/alerts" if alert.get("system") else f"{base}/api/v1/alerts/{alert['id']}"


def _fingerprint(alert: dict[str, Any]) -> str:
    # System alerts number apart from equipment alerts: the top bit keeps their fingerprints apart.
    return f"{(1 << 63 if alert.get('system') else 0) | int(alert['id']):016x}"


def _subject(alert: dict[str, Any]) -> str:
    return "SafeWatch system" if alert.get("system") else str(alert["equipment_code"])


def _annotations(alert: dict[str, Any]) -> dict[str, str]:
    out = {"summary": str(alert["message"])}
    for key in ("unit_name", "address", "metric"):
        if alert.get(key):
            out[key] = str(alert[key])
    if alert.get("value") is not None:
        out["value"] = f"{alert['value']:g}"
    if alert.get("limit_value") is not None:
        out["limit"] = f"{alert['limit_value']:g}"
    return out


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    first = dicts[0]
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in dicts[1:])}


def alertmanager_v4(payload: dict[str, Any], *, external_url: str) -> dict[str, Any]:
    """The Alertmanager webhook (version 4) body of one notification."""
    status = payload["status"]
    alerts = []
    for a in payload["alerts"]:
        ended = a.get("closed_at") or a.get("cleared_at")
        alerts.append({
            "status": status,
            "labels": _labels(a),
            "annotations": _annotations(a),
            "startsAt": a["opened_at"],
            "endsAt": ended if status == "resolved" and ended else ZERO_TIME,
            "generatorURL": _link(a, external_url),
            "fingerprint": _fingerprint(a),
        })
    labels = [x["labels"] for x in alerts]
    group_labels = {"site": payload["group_key"].split("|", 1)[0], "division_code": payload["division_code"]}
    return {
        "version": "4",
        "groupKey": f"{{}}:{{{payload['group_key']}}}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": payload.get("receiver") or payload["division_code"],
        "groupLabels": group_labels,
        "commonLabels": _common(labels),
        "commonAnnotations": _common([x["annotations"] for x in alerts]),
        "externalURL": external_url,
        "alerts": alerts,
    }


def summary_line(payload: dict[str, Any]) -> str:
    """One line for a subject or an SMS: status, count, the most severe alert's text."""
    alerts = payload["alerts"]
    order = ("critical", "major", "minor", "warning")
    worst = min(alerts, key=lambda a: order.index(a["severity"]) if a["severity"] in order else 9)
    more = f" (+{len(alerts) - 1} more at this site)" if len(alerts) > 1 else ""
    word = "RESOLVED" if payload["status"] == "resolved" else worst["severity"].upper()
    return f"[SafeWatch {word}] {worst['message']} — {_subject(worst)} @ {worst['division_code']}{more}"


def render_template(template: str, payload: dict[str, Any], *, idempotency_key: str) -> str:
    """An SMS gateway's body from its template; ``{name}`` placeholders, values JSON-escaped.

    Placeholders: summary, status, count, severity, division_code, level, equipment_code, message,
    idempotency_key. Unknown ones are left as written, so a typo shows in the message, not as a crash.
    """
    first = payload["alerts"][0]
    values = {"summary": summary_line(payload), "status": payload["status"], "count": str(len(payload["alerts"])),
              "severity": first["severity"], "division_code": payload["division_code"], "level": payload["level"],
              "equipment_code": first.get("equipment_code") or "", "message": first["message"],
              "idempotency_key": idempotency_key}

    def sub(m: re.Match[str]) -> str:
        value = values.get(m.group(1))
        return m.group(0) if value is None else json.dumps(value, ensure_ascii=False)[1:-1]

    return _PLACEHOLDER.sub(sub, template)


def email_message(payload: dict[str, Any], *, to: str, sender: str, idempotency_key: str,
                  external_url: str) -> EmailMessage:
    """The e-mail of one notification; its Message-ID is the idempotency key, so mail systems dedupe it."""
    msg = EmailMessage()
    msg["Subject"] = summary_line(payload)
    msg["From"] = sender
    msg["To"] = to
    msg["Message-ID"] = f"<{idempotency_key}@safewatch>"
    msg["X-Idempotency-Key"] = idempotency_key
    lines = [f"{len(payload['alerts'])} alert(s), {payload['status']}, level {payload['level']}, "
             f"division {payload['division_code']}", ""]
    for a in payload["alerts"]:
        lines.append(f"- [{a['severity']}] {a['message']}")
        if a.get("system"):
            lines.append(f"  SafeWatch system: {a['source']} / {a['key']}")
        else:
            lines.append(f"  equipment {a['equipment_code']}  unit {a.get('unit_name') or '-'}  "
                         f"{a.get('address') or ''}".rstrip())
        lines.append(f"  opened {a['opened_at']}  {_link(a, external_url)}")
    msg.set_content("\n".join(lines) + "\n")
    return msg


def mqtt_message(payload: dict[str, Any], *, idempotency_key: str) -> bytes:
    """The JSON published on ``se/v1/alerts/{division}``: the payload plus its idempotency key."""
    body = {k: v for k, v in payload.items() if k not in ("template", "receiver")}
    return json.dumps({**body, "idempotency_key": idempotency_key}, ensure_ascii=False).encode()
