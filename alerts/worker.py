"""The alert worker: its own subscription (sharded by league), the pure engine, then SQL, then ack."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

import psycopg
from prometheus_client import REGISTRY, CollectorRegistry

from alerts.engine.defaults import DEFAULT_RULES
from alerts.engine.rules import Condition, Rule
from alerts.engine.step import Effect, RaiseAlert, event_effect, step
from alerts.metrics import AlertMetrics
from alerts.store import (
    EquipmentInfo,
    apply_effects,
    load_active_conditions,
    load_equipment,
    load_equipment_by_codes,
)
from safewatch.contract import (
    ContractError,
    Kind,
    Limits,
    decode_event,
    decode_telemetry,
    device_filter,
    equipment_codes,
    parse_topic,
)
from safewatch.db import connect
from safewatch.metrics_server import serve_metrics
from safewatch.mqtt import Delivery, Subscriber
from safewatch.retry import backoff
from safewatch.settings import Settings

log = logging.getLogger(__name__)


class Engine:
    """The worker's in-memory state: equipment it owns, rules, and one condition per (equipment, rule)."""

    def __init__(self, rules: tuple[Rule, ...] = DEFAULT_RULES) -> None:
        self.equipment: dict[int, EquipmentInfo] = {}
        self.by_code: dict[str, EquipmentInfo] = {}
        self.rules_by_category: dict[str, list[Rule]] = defaultdict(list)
        for rule in rules:
            self.rules_by_category[str(rule.category)].append(rule)
        self.conditions: dict[int, dict[str, Condition]] = defaultdict(dict)

    def add(self, infos: list[EquipmentInfo]) -> None:
        for info in infos:
            self.equipment[info.id] = info
            self.by_code[info.code] = info

    def effects_for(self, deliveries: list[Delivery], now_ms: int,
                    ) -> tuple[list[Effect], int, dict[int, dict[str, Condition]]]:
        """Decode a batch and run the pure engine over it.

        Returns the effects, the number of readings evaluated, and the condition changes to keep
        once the effects are committed (`commit_conditions`).
        """
        limits = Limits(now_ms)
        per_equipment: dict[int, list[tuple[str, int, float]]] = defaultdict(list)
        effects: list[Effect] = []
        for d in deliveries:
            try:
                topic = parse_topic(d.topic)
                if topic.kind is Kind.TELEMETRY:
                    for r in decode_telemetry(d.payload, limits).readings:
                        info = self.by_code.get(r.equipment)
                        if info is not None and info.gateway_id == topic.gateway_id:
                            per_equipment[info.id].append((r.metric, r.ts_ms, r.value))
                elif topic.kind is Kind.EVENT:
                    event = decode_event(d.payload, limits)
                    info = self.by_code.get(event.equipment)
                    if info is not None and info.gateway_id == topic.gateway_id:
                        effects.append(event_effect(info.id, event.type, event.active, event.ts_ms))
            except ContractError:
                continue  # the ingest dead-letters it; nothing to evaluate here
        evaluated = 0
        pending: dict[int, dict[str, Condition]] = {}
        for eq_id, readings in per_equipment.items():
            info = self.equipment[eq_id]
            if info.status != "in_use":
                continue
            changed, eq_effects = step(eq_id, info.rated, self.rules_by_category.get(info.category, ()),
                                       self.conditions.get(eq_id, {}), readings)
            if changed:
                pending[eq_id] = changed
            effects.extend(eq_effects)
            evaluated += len(readings)
        return effects, evaluated, pending

    def commit_conditions(self, pending: dict[int, dict[str, Condition]]) -> None:
        for eq_id, changed in pending.items():
            self.conditions[eq_id].update(changed)


def _codes(deliveries: list[Delivery]) -> set[str]:
    codes: set[str] = set()
    for d in deliveries:
        codes |= equipment_codes(d.payload)
    return codes


def run(settings: Settings, *, stop: threading.Event | None = None,
        registry: CollectorRegistry = REGISTRY, ready: threading.Event | None = None) -> None:
    """Run an alert worker for ``settings.alerts.leagues`` (all when empty) until ``stop`` is set."""
    stop = stop or threading.Event()
    cfg = settings.alerts
    metrics = AlertMetrics(registry)
    if cfg.metrics_port and registry is REGISTRY:
        serve_metrics(cfg.metrics_port, settings.api.host)
    engine = Engine()
    conn: psycopg.Connection | None = None
    delays = backoff()
    while conn is None and not stop.is_set():
        try:
            conn = connect(settings.db.url)
            engine.add(load_equipment(conn, cfg.leagues))
            for eq_id, rule_key in load_active_conditions(conn, cfg.leagues):
                engine.conditions[eq_id][rule_key] = Condition(active=True)
            conn.commit()
        except psycopg.OperationalError as exc:
            log.error("database unavailable at start; retrying", extra={"error": str(exc).strip()[:200]})
            conn = None
            stop.wait(next(delays))
    if conn is None:
        return
    filters = [device_filter(league) for league in cfg.leagues] or [device_filter()]
    sub = Subscriber(settings.mqtt, client_id=f"safewatch-{cfg.worker_id}", topic_filters=filters,
                     max_inflight=settings.ingest.max_inflight, protocol5=settings.mqtt.protocol5)
    with sub:
        log.info("alert worker started", extra={"worker": cfg.worker_id, "equipment": len(engine.equipment),
                                                "filters": filters})
        while not stop.is_set():
            if ready is not None and not ready.is_set() and sub.subscribed.is_set():
                ready.set()
            deliveries = sub.get_batch(settings.ingest.batch_max_messages, settings.ingest.batch_max_ms / 1000)
            if not deliveries:
                continue
            conn = _handle(conn, deliveries, engine, settings, metrics, stop)
            if conn is None:
                break
            sub.ack(deliveries)
    log.info("alert worker stopped", extra={"worker": cfg.worker_id})


def _handle(conn: psycopg.Connection, deliveries: list[Delivery], engine: Engine, settings: Settings,
            metrics: AlertMetrics, stop: threading.Event) -> psycopg.Connection | None:
    """Evaluate and commit one batch, retrying the database until it succeeds or we are stopped."""
    delays = backoff()
    while not stop.is_set():
        try:
            if conn.closed:
                conn = connect(settings.db.url)
            with conn.transaction():  # one real transaction: the lookup must not open an outer one
                missing = [c for c in _codes(deliveries) if c not in engine.by_code]
                if missing:
                    engine.add(load_equipment_by_codes(conn, missing, settings.alerts.leagues))
                effects, evaluated, pending = engine.effects_for(deliveries, int(time.time() * 1000))
                apply_effects(conn, effects, engine.equipment)
            engine.commit_conditions(pending)  # only after commit: a failed batch is evaluated again
        except psycopg.OperationalError as exc:
            log.error("database error; retrying batch", extra={"error": str(exc).strip()[:200]})
            stop.wait(next(delays))
            continue
        committed = time.time()
        metrics.evaluated.inc(evaluated)
        for e in effects:
            if isinstance(e, RaiseAlert):
                metrics.raised.labels(severity=str(e.severity)).inc()
                metrics.latency.labels(severity=str(e.severity)).observe(max(0.0, committed - e.ts_ms / 1000))
                log.info("alert raised", extra={"equipment_id": e.equipment_id, "rule": e.rule_key,
                                                "severity": str(e.severity)})
            else:
                metrics.cleared.inc()
        return conn
    return None
