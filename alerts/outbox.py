"""The transactional outbox (SQL): enqueue with grouping, claim what is due, record every attempt.

A row is written in the same transaction as the escalation step that decided it (itself started by
a timer the alert's own transaction wrote); senders claim due rows with ``FOR UPDATE SKIP LOCKED``
and a short lease (``claimed_until``) that they renew while the post is in flight, deliver outside
any transaction, then record the attempt at once, each in its own statement. A sender that dies
mid-delivery leaves a lease that lapses within the lease length, and the row is delivered again: at
least once, with the row's idempotency key for the receiver to drop the repeat; a delivery once
recorded is never sent again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg

from alerts.escalation import Placement, PlacementKind, place_notification, retry_delay
from alerts.notifiers.base import Notification

OUTBOX_CHANNEL = "safewatch_outbox"  # NOTIFY'd when rows are written: wakes the senders

LOCK_GROUP = "SELECT pg_advisory_xact_lock(hashtext(%s))"
SELECT_OPEN_GROUP_ROW = """
SELECT id, due_at FROM outbox
WHERE channel = %(channel)s AND target = %(target)s AND group_key = %(group_key)s
  AND delivered_at IS NULL AND expired_at IS NULL AND attempts = 0 AND claimed_until IS NULL
  AND due_at > clock_timestamp() + interval '200 milliseconds'
ORDER BY due_at DESC LIMIT 1
FOR UPDATE
"""
SELECT_LAST_GROUP_ROW = """
SELECT max(created_at) FROM outbox
WHERE channel = %(channel)s AND target = %(target)s AND group_key = %(group_key)s
  AND created_at > clock_timestamp() - %(interval_s)s * interval '1 second'
"""
# Each write is one round trip (the row and its link to the alert together): a flood is many of them.
APPEND_TO_ROW = """
WITH appended AS (
    UPDATE outbox SET payload = jsonb_set(payload, '{alerts}', payload -> 'alerts' || %(alert)s::jsonb)
    WHERE id = %(id)s
      AND NOT EXISTS (SELECT 1 FROM notification_alerts WHERE outbox_id = %(id)s AND alert_id = %(alert_id)s)
    RETURNING id)
INSERT INTO notification_alerts (outbox_id, alert_id, level) SELECT id, %(alert_id)s, %(level)s FROM appended
"""
INSERT_ROW = """
WITH written AS (
    INSERT INTO outbox (alert_id, channel, target, idempotency_key, payload, due_at, expires_at, group_key)
    VALUES (%(alert_id)s, %(channel)s, %(target)s, %(key)s, %(payload)s, %(due_at)s,
            clock_timestamp() + %(expires_s)s * interval '1 second', %(group_key)s)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id)
INSERT INTO notification_alerts (outbox_id, alert_id, level) SELECT id, %(alert_id)s, %(level)s FROM written
RETURNING outbox_id
"""
NOTIFY_SENDERS = "SELECT pg_notify('" + OUTBOX_CHANNEL + "', '')"

EXPIRE_OVERDUE = """
WITH gone AS (
    UPDATE outbox SET expired_at = clock_timestamp(), claimed_until = NULL
    WHERE delivered_at IS NULL AND expired_at IS NULL AND expires_at <= clock_timestamp()
      AND (claimed_until IS NULL OR claimed_until < clock_timestamp())
    RETURNING id, attempts, last_error
)
INSERT INTO outbox_attempts (outbox_id, attempt, outcome, error)
SELECT id, attempts, 'expired', 'expired before delivery; last error: ' || coalesce(last_error, 'none') FROM gone
RETURNING outbox_id
"""
CLAIM_DUE = """
UPDATE outbox o SET claimed_until = clock_timestamp() + %(claim_s)s * interval '1 second', attempts = attempts + 1
WHERE o.id IN (
    SELECT id FROM outbox
    WHERE delivered_at IS NULL AND expired_at IS NULL AND due_at <= clock_timestamp()
      AND (claimed_until IS NULL OR claimed_until < clock_timestamp())
    ORDER BY due_at, id LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING o.id, o.channel, o.target, o.idempotency_key, o.payload, o.attempts
"""
# One statement (its own transaction in autocommit), for one delivery or several.
RECORD_DELIVERED = """
WITH batch AS (SELECT * FROM unnest(%(ids)s::bigint[], %(ms)s::float8[]) AS b (id, ms)),
done AS (
    UPDATE outbox o SET delivered_at = clock_timestamp(), claimed_until = NULL, last_error = NULL
    FROM batch WHERE o.id = batch.id AND o.delivered_at IS NULL RETURNING o.id, o.attempts, batch.ms)
INSERT INTO outbox_attempts (outbox_id, attempt, outcome, duration_ms)
SELECT id, attempts, 'delivered', ms FROM done
"""
# Rows recorded meanwhile (delivered, failed or expired: claimed_until NULL) are left alone.
RENEW_LEASES = """
UPDATE outbox SET claimed_until = clock_timestamp() + %(claim_s)s * interval '1 second'
WHERE id = ANY(%(ids)s::bigint[]) AND delivered_at IS NULL AND expired_at IS NULL AND claimed_until IS NOT NULL
"""
RECORD_FAILED = """
WITH failed AS (
    UPDATE outbox SET due_at = clock_timestamp() + %(delay_s)s * interval '1 second', claimed_until = NULL,
                      last_error = %(error)s
    WHERE id = %(id)s AND delivered_at IS NULL RETURNING id, attempts)
INSERT INTO outbox_attempts (outbox_id, attempt, outcome, duration_ms, error)
SELECT id, attempts, 'failed', %(ms)s, %(error)s FROM failed
"""
SECONDS_TO_NEXT_DUE = """
SELECT extract(epoch FROM min(greatest(due_at, coalesce(claimed_until, due_at))) - clock_timestamp())
FROM outbox WHERE delivered_at IS NULL AND expired_at IS NULL
"""
SELECT_BACKLOG = """
SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)
FROM outbox WHERE delivered_at IS NULL AND expired_at IS NULL
"""


@dataclass(frozen=True, slots=True)
class Recipient:
    """One address to notify: a contact's channel, or a division's MQTT alert topic."""

    channel: str
    target: str
    receiver: str
    template: str | None = None


def idempotency_key(seed: str, channel: str, target: str) -> str:
    """The key a receiver drops repeats by: one per (what is told, channel, address)."""
    digest = hashlib.sha256(f"{channel}|{target}".encode()).hexdigest()[:16]
    return f"sw-{seed}-{channel}-{digest}"


def enqueue(conn: psycopg.Connection, *, recipient: Recipient, alert: dict[str, Any], alert_id: int, level: str,
            division_code: str, status: str, group_key: str, key_seed: str, now: datetime,
            group_interval_s: float, expires_s: int) -> tuple[int, Placement] | None:
    """Put ``alert`` into a notification for ``recipient``, grouped by ``group_key``, in the caller's transaction.

    Returns (outbox id, placement), or None when this very notification was already written.
    """
    params = {"channel": recipient.channel, "target": recipient.target, "group_key": group_key,
              "interval_s": group_interval_s}
    if group_interval_s > 0:
        # Two notifiers placing alerts of one group at once must agree on one row.
        conn.execute(LOCK_GROUP, (f"{recipient.channel}|{recipient.target}|{group_key}",))
        open_row = conn.execute(SELECT_OPEN_GROUP_ROW, params).fetchone()
        last = conn.execute(SELECT_LAST_GROUP_ROW, params).fetchone()
        placement = place_notification(now=now, interval_s=group_interval_s,
                                       pending_due_at=open_row[1] if open_row else None,
                                       last_created_at=last[0] if last else None)
    else:
        open_row, placement = None, place_notification(now=now, interval_s=0, pending_due_at=None,
                                                       last_created_at=None)
    if placement.kind is PlacementKind.APPEND and open_row is not None:
        conn.execute(APPEND_TO_ROW, {"id": open_row[0], "alert": orjson.dumps([alert]).decode(),
                                     "alert_id": alert_id, "level": level})
        return open_row[0], placement
    payload = {"status": status, "group_key": group_key, "receiver": recipient.receiver, "level": level,
               "division_code": division_code, "template": recipient.template, "alerts": [alert]}
    row = conn.execute(INSERT_ROW, {
        "alert_id": alert_id, "channel": recipient.channel, "target": recipient.target,
        "key": idempotency_key(key_seed, recipient.channel, recipient.target),
        "payload": orjson.dumps(payload).decode(),
        "due_at": placement.due_at, "expires_s": expires_s, "group_key": group_key, "level": level,
    }).fetchone()
    return None if row is None else (row[0], placement)


def wake_senders(conn: psycopg.Connection) -> None:
    """Tell the senders (at commit) that rows are waiting."""
    conn.execute(NOTIFY_SENDERS)


def expire_overdue(conn: psycopg.Connection) -> int:
    """Give up on rows past their expiry, with an attempt row saying so; return how many."""
    return len(conn.execute(EXPIRE_OVERDUE).fetchall())


def claim_due(conn: psycopg.Connection, *, limit: int, claim_s: float) -> list[Notification]:
    """Lease up to ``limit`` due rows to this sender for ``claim_s`` (commit right after, then deliver)."""
    rows = conn.execute(CLAIM_DUE, {"limit": limit, "claim_s": claim_s}).fetchall()
    return [Notification(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


def record_delivered(conn: psycopg.Connection, delivered: list[tuple[Notification, float]]) -> None:
    """Mark (notification, duration in ms) pairs delivered, each with its attempt row."""
    if delivered:
        conn.execute(RECORD_DELIVERED, {"ids": [n.id for n, _ in delivered], "ms": [ms for _, ms in delivered]})


def renew_leases(conn: psycopg.Connection, ids: list[int], *, claim_s: float) -> None:
    """Extend this sender's lease on ``ids`` (posts still in flight) by ``claim_s`` from now."""
    if ids:
        conn.execute(RENEW_LEASES, {"ids": ids, "claim_s": claim_s})


def storable(text: str) -> str:
    """``text`` as a text column takes it: NUL and lone surrogates escaped (a receiver's answer may hold any byte,
    and one bad answer must not stop the recording of every other delivery)."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def record_failed(conn: psycopg.Connection, n: Notification, *, error: str, duration_ms: float,
                  base_s: float, max_s: float) -> float:
    """Log the failed attempt and schedule the next; return the delay chosen."""
    delay = retry_delay(n.attempt, base_s=base_s, max_s=max_s, salt=n.id)
    conn.execute(RECORD_FAILED, {"id": n.id, "delay_s": delay, "error": storable(error)[:1000], "ms": duration_ms})
    return delay


def seconds_to_next_due(conn: psycopg.Connection) -> float | None:
    row = conn.execute(SECONDS_TO_NEXT_DUE).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def backlog(conn: psycopg.Connection) -> tuple[int, float]:
    """(rows pending, age in seconds of the oldest)."""
    row = conn.execute(SELECT_BACKLOG).fetchone()
    return (int(row[0]), float(row[1])) if row else (0, 0.0)
