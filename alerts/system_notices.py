"""System alerts (schema 041) told to people: each opening and each clearing, once.

The trigger of schema 046 writes one ``system_alert_notices`` row per (system alert, opened | cleared) in
the writer's transaction. The notifier's timers loop claims unfired notices with ``FOR UPDATE SKIP LOCKED``
and, in one transaction, writes the outbox rows and marks the notice fired: a notice fires once, whichever
notifier or restart gets to it, and the outbox then delivers at least once with an idempotency key per
(notice, channel, address). Who hears it: the MQTT topic ``se/v1/alerts/system`` and the on-duty contacts of
the region division(s) on their channels, whatever categories they filter on.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import orjson
import psycopg

from alerts.escalation import ContactView, wants_system_alert
from alerts.outbox import Recipient, idempotency_key, wake_senders
from safewatch.contract import alert_topic

log = logging.getLogger(__name__)

SYSTEM_TOPIC_SEGMENT = "system"  # se/v1/alerts/system: never a division code (those are 6 digits)

CLAIM_NOTICES = """
SELECT n.id, n.kind, s.id, s.source, s.key, s.severity, s.message, s.details, s.opened_at, s.cleared_at
FROM system_alert_notices n JOIN system_alerts s ON s.id = n.system_alert_id
WHERE n.fired_at IS NULL
ORDER BY n.id LIMIT %s
FOR UPDATE OF n SKIP LOCKED
"""
SELECT_REGIONS = "SELECT code FROM divisions WHERE level = 'region' ORDER BY code"
SELECT_REGION_CONTACTS = """
SELECT c.division_code, c.name, c.on_duty, c.min_severity, ch.channel, ch.address, ch.template
FROM contacts c JOIN contact_channels ch ON ch.contact_id = c.id
WHERE c.division_code = ANY(%s) AND c.on_duty
ORDER BY c.id, ch.id
"""
INSERT_SYSTEM_ROW = """
INSERT INTO outbox (system_alert_id, channel, target, idempotency_key, payload, expires_at, group_key)
VALUES (%(system_alert_id)s, %(channel)s, %(target)s, %(key)s, %(payload)s,
        clock_timestamp() + %(expires_s)s * interval '1 second', %(group_key)s)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id
"""
MARK_NOTICE_FIRED = "UPDATE system_alert_notices SET fired_at = clock_timestamp(), outcome = %s WHERE id = %s"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def system_payload(*, kind: str, alert: dict[str, Any], region: str, recipient: Recipient) -> dict[str, Any]:
    """The outbox payload of one notice (render.py's shape, its alert marked ``"system": true``)."""
    status = "resolved" if kind == "cleared" else "firing"
    snap = {"id": alert["id"], "system": True, "source": alert["source"], "key": alert["key"],
            "rule_key": f"system.{alert['source']}.{alert['key']}", "severity": alert["severity"],
            "state": "normal" if kind == "cleared" else "active_unack", "level": "region",
            "division_code": region, "league_code": None, "equipment_code": None, "category": None,
            "message": alert["message"], "details": alert["details"], "opened_at": _iso(alert["opened_at"]),
            "cleared_at": _iso(alert["cleared_at"]), "closed_at": _iso(alert["cleared_at"])}
    return {"status": status, "kind": "system", "group_key": f"system:{alert['source']}:{alert['key']}|{status}",
            "receiver": recipient.receiver, "level": "region", "division_code": region,
            "template": recipient.template, "alerts": [snap]}


def _recipients(conn: psycopg.Connection, regions: list[str], *, severity: str) -> list[tuple[str, Recipient]]:
    """(region, recipient) pairs: the system topic once, then each wanting contact's channels, each address once."""
    first = regions[0] if regions else SYSTEM_TOPIC_SEGMENT
    found = [(first, Recipient("mqtt", alert_topic(SYSTEM_TOPIC_SEGMENT), SYSTEM_TOPIC_SEGMENT))]
    seen = {("mqtt", alert_topic(SYSTEM_TOPIC_SEGMENT))}
    for division, name, on_duty, min_severity, channel, address, template in conn.execute(
            SELECT_REGION_CONTACTS, (regions,)):
        if channel == "sse":  # the dashboards show system alerts from the API (a banner on every page)
            continue
        if not wants_system_alert(ContactView(on_duty, None, min_severity), severity=severity):
            continue
        if (channel, address) not in seen:
            seen.add((channel, address))
            found.append((division, Recipient(channel, address, name, template)))
    return found


def fire_system_notices(conn: psycopg.Connection, *, batch: int, expires_s: int) -> list[str]:
    """Turn every unfired notice into outbox rows, a batch per transaction; return the kinds fired."""
    fired: list[str] = []
    while True:
        with conn.transaction():
            cur = conn.execute(CLAIM_NOTICES, (batch,))
            notices = cur.fetchall()
            if not notices:
                return fired
            regions = [r[0] for r in conn.execute(SELECT_REGIONS)]
            written = 0
            for notice_id, kind, sa_id, source, key, severity, message, details, opened_at, cleared_at in notices:
                alert = {"id": sa_id, "source": source, "key": key, "severity": severity, "message": message,
                         "details": details, "opened_at": opened_at, "cleared_at": cleared_at}
                recipients = _recipients(conn, regions, severity=severity)
                for region, r in recipients:
                    payload = system_payload(kind=kind, alert=alert, region=region, recipient=r)
                    row = conn.execute(INSERT_SYSTEM_ROW, {
                        "system_alert_id": sa_id, "channel": r.channel, "target": r.target,
                        "key": idempotency_key(f"s{notice_id}", r.channel, r.target),
                        "payload": orjson.dumps(payload).decode(), "expires_s": expires_s,
                        "group_key": payload["group_key"]}).fetchone()
                    written += row is not None
                conn.execute(MARK_NOTICE_FIRED, (f"{len(recipients)} recipient(s)", notice_id))
                fired.append(kind)
                log.info("system alert notified", extra={"system_alert_id": sa_id, "kind": kind, "source": source,
                                                         "key": key, "recipients": len(recipients)})
            if written:
                wake_senders(conn)
