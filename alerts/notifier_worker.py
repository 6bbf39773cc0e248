"""The notifier process (``safewatch notifier``): fires escalation timers and delivers the outbox.

Two loops, each with its own connections, in threads of one process:

- **timers**: claims due ``escalation_timers`` with ``FOR UPDATE SKIP LOCKED``, asks the pure core
  (alerts/escalation/) what each means, and in the same transaction updates ``alerts.level`` with an
  ``alert_escalations`` audit row, writes the outbox rows (grouped), writes the next timers and marks
  the timer fired — so a timer fires once, whichever process or restart gets to it. It sleeps until
  the next due time or a ``NOTIFY safewatch_timers`` (sent by the trigger on ``alert_transitions``).
- **senders**: claim due outbox rows in batches under a short lease renewed while they are in hand,
  deliver them through a small thread pool, record each attempt the moment it ends, retry failures
  with back-off until the row expires. Woken by ``NOTIFY safewatch_outbox`` or the next due time (a lapsing lease
  included).

Everything lives in the database, so stopping or killing this process at any point loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any, Protocol

import psycopg
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from alerts.escalation import (
    AlertView,
    ContactView,
    Decision,
    EscalationPolicy,
    Level,
    Place,
    PolicyError,
    Timer,
    TimerKind,
    World,
    divisions_to_notify,
    group_key,
    next_escalation,
    select_policy,
    wants,
)
from alerts.notifiers.base import CHANNELS, DeliveryError, Notification
from alerts.notifiers.mqtt import MqttSender
from alerts.notifiers.smtp import EmailSender
from alerts.notifiers.sse import SseSender
from alerts.notifiers.webhook import WebhookSender
from alerts.outbox import (
    OUTBOX_CHANNEL,
    Recipient,
    backlog,
    claim_due,
    enqueue,
    expire_overdue,
    record_delivered,
    record_failed,
    renew_leases,
    seconds_to_next_due,
    wake_senders,
)
from alerts.store import NOTIFY_CHANNEL as ALERTS_CHANNEL
from alerts.system_notices import fire_system_notices
from safewatch.contract import alert_topic
from safewatch.db import connect
from safewatch.metrics_server import serve_process_metrics
from safewatch.retry import backoff
from safewatch.settings import Settings

log = logging.getLogger(__name__)

TIMERS_CHANNEL = "safewatch_timers"  # NOTIFY'd by the alert_transitions trigger (migration 020)
ESCALATION_ACTOR = "escalation"

CLAIM_DUE_TIMERS = """
SELECT id, alert_id, kind, level, due_at FROM escalation_timers
WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at <= clock_timestamp()
ORDER BY due_at, id LIMIT %s
FOR UPDATE SKIP LOCKED
"""
SECONDS_TO_NEXT_TIMER = """
SELECT extract(epoch FROM min(due_at) - clock_timestamp()) FROM escalation_timers
WHERE fired_at IS NULL AND cancelled_at IS NULL
"""
SELECT_NOW = "SELECT clock_timestamp()"
# Hazards and supervision matters escalate on policies of their own (migration 045).
SELECT_POLICIES = """
SELECT 'hazard' AS world, severity, category, open_levels, max_level, banner_ack_s, league_ack_s, renotify_s
FROM escalation_policies
UNION ALL
SELECT 'supervision', severity, category, open_levels, max_level, banner_ack_s, league_ack_s, renotify_s
FROM supervision_escalation_policies
"""
SELECT_NOTIFY_PARENT = "SELECT division_code FROM division_routing WHERE also_notify_parent"
# The alert row is locked so an acknowledgement cannot slip between this decision and its commit.
SELECT_ALERT_FOR_ESCALATION = """
SELECT a.id, a.severity, a.world, a.state, a.level, a.closed_at IS NOT NULL AS closed, a.division_code, a.league_code,
       coalesce(d.region_code, d.league_code, d.code) AS region_code, a.rule_key, a.message, a.metric, a.value,
       a.limit_value, a.active, a.opened_at, a.cleared_at, a.closed_at, e.id AS equipment_id, e.code AS equipment_code,
       e.category, e.gateway_id, e.unit_id, u.name AS unit_name, e.address,
       ARRAY(SELECT DISTINCT na.level FROM notification_alerts na WHERE na.alert_id = a.id) AS notified
FROM alerts a JOIN equipment e ON e.id = a.equipment_id JOIN divisions d ON d.code = a.division_code
LEFT JOIN units u ON u.id = e.unit_id
WHERE a.id = %s
FOR NO KEY UPDATE OF a
"""
SELECT_RECIPIENTS = """
SELECT c.id, c.name, c.on_duty, c.categories, c.min_severity, ch.channel, ch.address, ch.template
FROM contacts c JOIN contact_channels ch ON ch.contact_id = c.id
WHERE c.division_code = %s AND c.on_duty
ORDER BY c.id, ch.id
"""
UPDATE_ALERT_LEVEL = "UPDATE alerts SET level = %s WHERE id = %s"
INSERT_ESCALATION = """
INSERT INTO alert_escalations (alert_id, from_level, to_level, notified_levels, actor, reason)
VALUES (%s, %s, %s, %s, %s, %s)
"""
INSERT_TIMER = "INSERT INTO escalation_timers (alert_id, kind, level, due_at) VALUES (%s, %s, %s, %s)"
MARK_FIRED = "UPDATE escalation_timers SET fired_at = clock_timestamp(), outcome = %s WHERE id = %s"
NOTIFY_ALERT_CHANGED = "SELECT pg_notify('" + ALERTS_CHANNEL + "', %s)"
UNACKNOWLEDGED = ("active_unack", "returned_unack")


class NotifierMetrics:
    """The notifier's metrics (STYLE.md §5 names)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.escalations = Counter("safewatch_alerts_escalations_total", "Alerts that climbed to a level",
                                   ["level"], registry=registry)
        self.sent = Counter("safewatch_alerts_notifications_sent_total", "Delivery attempts by outcome",
                            ["channel", "outcome"], registry=registry)
        self.timers = Counter("safewatch_alerts_timers_fired_total", "Escalation timers fired", ["kind"],
                              registry=registry)
        self.pending = Gauge("safewatch_alerts_outbox_pending", "Outbox rows not yet delivered nor expired",
                             registry=registry)
        self.oldest = Gauge("safewatch_alerts_outbox_oldest_age_seconds", "Age of the oldest undelivered row",
                            registry=registry)
        self.system_notices = Counter("safewatch_alerts_system_notices_fired_total",
                                      "System alerts (schema 041) told to their recipients", ["kind"],
                                      registry=registry)
        for kind in ("opened", "cleared"):
            self.system_notices.labels(kind=kind)
        for level in Level:
            self.escalations.labels(level=str(level))
        for kind in TimerKind:
            self.timers.labels(kind=str(kind))
        for channel in CHANNELS:
            for outcome in ("delivered", "failed", "expired"):
                self.sent.labels(channel=channel, outcome=outcome)


# -- timers -------------------------------------------------------------------------------------

def _policies(rows: list[tuple[Any, ...]]) -> dict[World, list[EscalationPolicy]]:
    by_world: dict[World, list[EscalationPolicy]] = {world: [] for world in World}
    for world, severity, category, open_levels, max_level, banner_ack_s, league_ack_s, renotify_s in rows:
        by_world[World(world)].append(EscalationPolicy(
            severity, category, frozenset(Level(x) for x in open_levels), Level(max_level), banner_ack_s,
            league_ack_s, renotify_s))
    return by_world


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _snapshot(a: dict[str, Any]) -> dict[str, Any]:
    """The alert as notifications carry it (render.py documents the shape)."""
    keys = ("id", "equipment_code", "category", "rule_key", "severity", "state", "level", "division_code",
            "league_code", "message", "metric", "value", "limit_value", "gateway_id", "unit_name", "address")
    snap = {k: a[k] for k in keys}
    snap.update(opened_at=_iso(a["opened_at"]), cleared_at=_iso(a["cleared_at"]), closed_at=_iso(a["closed_at"]))
    return snap


def _recipients(conn: psycopg.Connection, division: str, *, severity: str, category: str) -> list[Recipient]:
    # Every notified division hears it on its MQTT alert topic and on its dashboards, contacts or not.
    found = [Recipient("mqtt", alert_topic(division), division), Recipient("sse", division, division)]
    for _cid, name, on_duty, categories, min_severity, channel, address, template in conn.execute(
            SELECT_RECIPIENTS, (division,)):
        view = ContactView(on_duty, frozenset(categories) if categories is not None else None, min_severity)
        if wants(view, severity=severity, category=category):
            found.append(Recipient(channel, address, name, template))
    return found


RecipientCache = dict[tuple[str, str, str], list[Recipient]]


def _carry_out(conn: psycopg.Connection, timer_id: int, alert: dict[str, Any], decision: Decision, *,
               notify_parent: frozenset[str], now: datetime, settings: Settings, cache: RecipientCache) -> int:
    """Write what ``decision`` says, in the caller's transaction; return the outbox rows written."""
    cfg = settings.notifier
    if decision.new_level is not None:
        conn.execute(UPDATE_ALERT_LEVEL, (str(decision.new_level), alert["id"]))
        conn.execute(INSERT_ESCALATION, (alert["id"], alert["level"], str(decision.new_level),
                                         [str(x) for x in decision.notify], ESCALATION_ACTOR, decision.reason))
        conn.execute(NOTIFY_ALERT_CHANGED, (str(alert["id"]),))
        alert = {**alert, "level": str(decision.new_level)}
    place = Place(alert["division_code"], alert["league_code"], alert["region_code"])
    snapshot = _snapshot(alert)
    key = group_key(gateway_id=alert["gateway_id"], unit_id=alert["unit_id"], equipment_id=alert["equipment_id"],
                    status=decision.status)
    written = 0
    seen: set[tuple[str, str]] = set()
    for level, division in divisions_to_notify(decision.notify, place, notify_parent):
        who = (division, alert["severity"], alert["category"])
        if who not in cache:  # a flood asks the same division many times in one batch
            cache[who] = _recipients(conn, division, severity=alert["severity"], category=alert["category"])
        for r in cache[who]:
            if (r.channel, r.target) in seen:
                continue
            seen.add((r.channel, r.target))
            placed = enqueue(conn, recipient=r, alert=snapshot, alert_id=alert["id"], level=str(level),
                             division_code=division, status=decision.status, group_key=key,
                             key_seed=f"t{timer_id}", now=now, group_interval_s=cfg.group_interval_s,
                             expires_s=cfg.expires_s)
            written += placed is not None
    for t in decision.timers:
        conn.execute(INSERT_TIMER, (alert["id"], str(t.kind), str(t.level) if t.level else None, t.due_at))
    return written


def fire_due_timers(conn: psycopg.Connection, settings: Settings, metrics: NotifierMetrics) -> int:
    """Fire every timer due now, a batch per transaction; return how many fired."""
    fired = 0
    while True:
        escalated: list[str] = []
        kinds: list[str] = []
        with conn.transaction():
            timers = conn.execute(CLAIM_DUE_TIMERS, (settings.notifier.batch,)).fetchall()
            if not timers:
                return fired
            policies = _policies(conn.execute(SELECT_POLICIES).fetchall())
            notify_parent = frozenset(r[0] for r in conn.execute(SELECT_NOTIFY_PARENT))
            now_row = conn.execute(SELECT_NOW).fetchone()
            assert now_row is not None
            now: datetime = now_row[0]
            written = 0
            cache: RecipientCache = {}
            for timer_id, alert_id, kind, level, due_at in timers:
                cur = conn.execute(SELECT_ALERT_FOR_ESCALATION, (alert_id,))
                names = [c.name for c in cur.description or ()]
                found = cur.fetchone()
                assert found is not None  # the timer's foreign key keeps its alert
                alert = dict(zip(names, found, strict=True))
                view = AlertView(alert_id, alert["severity"], alert["category"], Level(alert["level"]),
                                 acknowledged=alert["state"] not in UNACKNOWLEDGED, closed=alert["closed"],
                                 notified=frozenset(Level(x) for x in alert["notified"]))
                try:
                    policy = select_policy(policies[World(alert["world"])], alert["severity"], alert["category"])
                except PolicyError as exc:
                    log.error("no escalation policy; timer dropped", extra={"alert_id": alert_id, "error": str(exc)})
                    conn.execute(MARK_FIRED, (f"failed: {exc}", timer_id))
                    continue
                timer = Timer(TimerKind(kind), due_at, Level(level) if level else None)
                decision = next_escalation(policy, view, timer, now)
                try:
                    with conn.transaction():  # a savepoint: one bad timer must not hold up the others
                        written += _carry_out(conn, timer_id, alert, decision, notify_parent=notify_parent, now=now,
                                              settings=settings, cache=cache)
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    log.exception("escalation step failed; timer dropped", extra={"alert_id": alert_id,
                                                                                 "timer_id": timer_id})
                    conn.execute(MARK_FIRED, (f"failed: {exc}"[:1000], timer_id))
                    continue
                conn.execute(MARK_FIRED, (decision.reason, timer_id))
                kinds.append(kind)
                if decision.new_level is not None:
                    escalated.append(str(decision.new_level))
                    log.info("alert escalated", extra={"alert_id": alert_id, "division_level": str(decision.new_level),
                                                       "reason": decision.reason})
            if written:
                wake_senders(conn)
        fired += len(timers)
        for kind in kinds:
            metrics.timers.labels(kind=kind).inc()
        for level in escalated:
            metrics.escalations.labels(level=level).inc()


# -- delivery -----------------------------------------------------------------------------------

class Sender(Protocol):
    def send(self, n: Notification) -> None: ...
    def close(self) -> None: ...


def _attempt(senders: dict[str, Sender], n: Notification) -> tuple[str | None, float]:
    """Send one notification (in a sender thread); return (error or None, duration in ms)."""
    started = time.perf_counter()
    try:
        senders[n.channel].send(n)
        error = None
    except DeliveryError as exc:
        error = str(exc)
    except KeyError:
        error = f"no sender for channel {n.channel!r}"
    except Exception as exc:  # a bug rendering one row must not stall the rest: recorded, retried, expires
        log.exception("notification could not be sent", extra={"outbox_id": n.id, "channel": n.channel})
        error = f"{type(exc).__name__}: {exc}"
    return error, (time.perf_counter() - started) * 1000


def _record(conn: psycopg.Connection, ended: list[tuple[Notification, str | None, float]], settings: Settings,
            metrics: NotifierMetrics) -> int:
    """Record attempts that just ended (the deliveries in one statement); return how many failed."""
    cfg = settings.notifier
    record_delivered(conn, [(n, ms) for n, error, ms in ended if error is None])
    failures = 0
    for n, error, ms in ended:
        metrics.sent.labels(channel=n.channel, outcome="delivered" if error is None else "failed").inc()
        if error is None:
            continue
        failures += 1
        try:
            delay = record_failed(conn, n, error=error, duration_ms=ms, base_s=cfg.retry_base_s,
                                  max_s=cfg.retry_max_s)
        except psycopg.DataError as exc:  # one row the database refuses must not stop the others
            log.exception("attempt could not be recorded; retrying the notification",
                          extra={"outbox_id": n.id, "channel": n.channel})
            delay = record_failed(conn, n, error=f"attempt could not be recorded: {type(exc).__name__}",
                                  duration_ms=ms, base_s=cfg.retry_base_s, max_s=cfg.retry_max_s)
        log.debug("delivery failed; will retry", extra={"outbox_id": n.id, "attempt": n.attempt,
                                                         "retry_in_s": round(delay, 2), "error": error})
    return failures


def deliver_due(conn: psycopg.Connection, senders: dict[str, Sender], pool: ThreadPoolExecutor,
                settings: Settings, metrics: NotifierMetrics, stop: threading.Event) -> int:
    """Deliver what is due until nothing is; return how many attempts were made.

    Up to ``batch`` rows are claimed whenever fewer than ``senders`` are left in hand, under a short lease
    (``claim_s``) that this loop renews every third of it while they are in hand; attempts are recorded the
    moment they end (those that ended together, in one statement). So a notifier killed at any instant
    leaves no recorded delivery to repeat, only its posts in flight (their Idempotency-Key lets the receiver
    drop the repeat), and its leases lapse within ``claim_s``. ``conn`` is in autocommit mode: each
    statement below is its own transaction.
    """
    cfg = settings.notifier
    heartbeat_s = cfg.claim_s / 3
    expired = expire_overdue(conn)
    if expired:
        log.warning("notifications expired undelivered", extra={"count": expired})
    in_hand: dict[Future[tuple[str | None, float]], Notification] = {}
    attempts = failures = 0
    claim = True  # at start, and whenever an attempt ended
    renewed = time.monotonic()
    try:
        while True:
            # Stopping: no new claims; the attempts in hand end and are recorded.
            if claim and len(in_hand) < cfg.senders and not stop.is_set():
                for n in claim_due(conn, limit=max(cfg.batch, cfg.senders) - len(in_hand), claim_s=cfg.claim_s):
                    in_hand[pool.submit(_attempt, senders, n)] = n
                claim = False
            if not in_hand:
                break
            done, _ = wait(in_hand, timeout=max(0.0, renewed + heartbeat_s - time.monotonic()),
                           return_when=FIRST_COMPLETED)
            if done:
                ended = [(in_hand.pop(f), *f.result()) for f in done]
                failures += _record(conn, ended, settings, metrics)
                attempts += len(ended)
                claim = True
            if in_hand and time.monotonic() - renewed >= heartbeat_s:
                renew_leases(conn, [n.id for n in in_hand.values()], claim_s=cfg.claim_s)
                renewed = time.monotonic()
    finally:
        # On a database error, let this process's own attempts end before any row can be claimed again by it.
        wait(in_hand)
    if failures:
        log.info("deliveries failed; retrying with back-off",
                 extra={"failed": failures, "delivered": attempts - failures})
    return attempts


# -- loops --------------------------------------------------------------------------------------

def _wait(listen: psycopg.Connection, seconds: float | None, cap: float, stop: threading.Event) -> None:
    """Wait for a NOTIFY on ``listen``, the given seconds (capped), or the stop event."""
    timeout = cap if seconds is None else max(0.0, min(seconds, cap))
    if timeout <= 0 or stop.is_set():
        return
    for _ in listen.notifies(timeout=timeout, stop_after=1):
        break


def _loop(name: str, channel: str, settings: Settings, stop: threading.Event,
          work: Callable[[psycopg.Connection], float | None], started: threading.Event) -> None:
    """Run ``work`` (returns seconds until it is next due) until stopped, reconnecting with back-off."""
    delays = backoff()
    down_since: float | None = None
    while not stop.is_set():
        try:
            with connect(settings.db.url, autocommit=True) as listen, connect(settings.db.url) as conn:
                conn.autocommit = True  # work() opens its own transactions
                listen.execute(f"LISTEN {channel}")
                if down_since is not None:
                    log.info("database reachable again", extra={"loop": name,
                                                                "down_s": round(time.monotonic() - down_since, 1)})
                    down_since = None
                delays = backoff()
                started.set()
                while not stop.is_set():
                    next_due = work(conn)
                    _wait(listen, next_due, settings.notifier.poll_s, stop)
        except psycopg.OperationalError as exc:
            if down_since is None:
                down_since = time.monotonic()
                log.error("database unavailable; retrying with back-off",
                          extra={"loop": name, "error": str(exc).strip()[:200]})
            stop.wait(next(delays))
        except Exception:  # the top of a worker loop: log, back off, carry on
            log.exception("notifier loop failed; restarting it", extra={"loop": name})
            stop.wait(next(delays))


def run(settings: Settings, *, stop: threading.Event | None = None, registry: CollectorRegistry = REGISTRY,
        ready: threading.Event | None = None) -> None:
    """Run the notifier until ``stop`` is set: escalation timers and outbox delivery."""
    stop = stop or threading.Event()
    cfg = settings.notifier
    metrics = NotifierMetrics(registry)
    if registry is REGISTRY:
        serve_process_metrics(settings, "notifier")
    web = WebhookSender(timeout_s=cfg.webhook_timeout_s, external_url=cfg.external_url)
    mqtt = MqttSender(settings.mqtt, client_id=f"safewatch-{cfg.worker_id}", timeout_s=cfg.mqtt_timeout_s)
    senders: dict[str, Sender] = {"webhook": web, "sms": web, "email": EmailSender(cfg), "mqtt": mqtt,
                                  "sse": SseSender(settings.db.url)}
    pool = ThreadPoolExecutor(max_workers=cfg.senders, thread_name_prefix="notify-send")
    last_gauge = [0.0]

    def timers_work(conn: psycopg.Connection) -> float | None:
        fire_due_timers(conn, settings, metrics)
        for kind in fire_system_notices(conn, batch=cfg.batch, expires_s=cfg.expires_s):
            metrics.system_notices.labels(kind=kind).inc()
        row = conn.execute(SECONDS_TO_NEXT_TIMER).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def outbox_work(conn: psycopg.Connection) -> float | None:
        deliver_due(conn, senders, pool, settings, metrics, stop)
        if time.monotonic() - last_gauge[0] > 5:
            pending, oldest = backlog(conn)
            metrics.pending.set(pending)
            metrics.oldest.set(oldest)
            last_gauge[0] = time.monotonic()
        return seconds_to_next_due(conn)

    timers_up, outbox_up = threading.Event(), threading.Event()
    threads = [threading.Thread(target=_loop, name=f"notifier-{name}", daemon=True,
                                args=(name, channel, settings, stop, work, up))
               for name, channel, work, up in (("timers", TIMERS_CHANNEL, timers_work, timers_up),
                                               ("outbox", OUTBOX_CHANNEL, outbox_work, outbox_up))]
    for t in threads:
        t.start()
    log.info("notifier started", extra={"worker": cfg.worker_id})
    while not stop.is_set():
        if ready is not None and not ready.is_set() and timers_up.is_set() and outbox_up.is_set():
            ready.set()
        stop.wait(0.1 if ready is not None and not ready.is_set() else 1.0)
    for t in threads:
        t.join()
    pool.shutdown(wait=True)
    for s in {id(s): s for s in senders.values()}.values():
        s.close()
    log.info("notifier stopped", extra={"worker": cfg.worker_id})
