"""The simulated fleet: equipment from the registry, one MQTT connection per gateway, faults on demand."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg

from safewatch.contract import Event, GatewayState, Kind, build_topic, encode_event, encode_status, encode_telemetry
from safewatch.mqtt import connect_publisher
from safewatch.settings import Settings
from simulators.faults import EVENT_OF_FAULT, Fault, random_faults
from simulators.profiles import Model, model_for

log = logging.getLogger(__name__)

SELECT_FLEET = """
SELECT e.code, e.category, e.rated, e.gateway_id, g.league_code
FROM equipment e JOIN gateways g ON g.id = e.gateway_id
WHERE e.status = 'in_use' AND (%(gateway_prefix)s::text IS NULL OR e.gateway_id LIKE %(gateway_prefix)s || '%%')
ORDER BY e.gateway_id, e.code
LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class SimEquipment:
    code: str
    category: str
    rated: dict[str, float]
    gateway_id: str
    league: str


def load_fleet(conn: psycopg.Connection, *, limit: int = 1_000_000, gateway_prefix: str | None = None,
               ) -> list[SimEquipment]:
    """The equipment to simulate, as the registry binds them to gateways."""
    rows = conn.execute(SELECT_FLEET, {"limit": limit, "gateway_prefix": gateway_prefix}).fetchall()
    return [SimEquipment(code, cat, {k: float(v) for k, v in (rated or {}).items()}, gw, league)
            for code, cat, rated, gw, league in rows]


class Fleet:
    """Models and gateways; `tick` advances every model and publishes one message per gateway."""

    def __init__(self, settings: Settings, equipment: list[SimEquipment], *, seed: int = 1,
                 client_prefix: str = "sim") -> None:
        self.settings = settings
        rng = random.Random(seed)
        self.models: dict[str, Model] = {e.code: model_for(e.category, e.rated, random.Random(rng.random()))
                                         for e in equipment}
        self.by_gateway: dict[str, list[SimEquipment]] = defaultdict(list)
        for e in equipment:
            self.by_gateway[e.gateway_id].append(e)
        self.clients: dict[str, paho.Client] = {}
        self._client_prefix = client_prefix
        self.pending: list[paho.MQTTMessageInfo] = []
        self.published = 0

    def connect(self) -> None:
        for gw, members in self.by_gateway.items():
            status_topic = build_topic(members[0].league, gw, Kind.STATUS)
            client = connect_publisher(self.settings.mqtt, client_id=f"{self._client_prefix}-{gw}",
                                       protocol5=self.settings.mqtt.protocol5,
                                       will=(status_topic, encode_status(GatewayState.OFFLINE)))
            client.publish(status_topic, encode_status(GatewayState.ONLINE, int(time.time() * 1000)), qos=1,
                           retain=True)
            self.clients[gw] = client

    def close(self, *, timeout_s: float = 30.0) -> None:
        self.flush(timeout_s)
        for client in self.clients.values():
            client.disconnect()  # a clean disconnect: no last will, status left as it was
            client.loop_stop()

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for the broker's acks of everything published; return how many are still unacked."""
        deadline = time.monotonic() + timeout_s
        for info in self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            info.wait_for_publish(remaining)
        left = sum(1 for info in self.pending if not info.is_published())
        self.pending.clear()
        return left

    def tick(self, t_ms: int, dt_s: float, faults: list[Fault]) -> None:
        active: dict[str, set[str]] = defaultdict(set)
        for f in faults:
            if f.active(t_ms):
                active[f.code].add(f.kind)
        for gw, members in self.by_gateway.items():
            readings = {e.code: self.models[e.code].step(t_ms / 1000, dt_s, active.get(e.code, ())) for e in members}
            topic = build_topic(members[0].league, gw, Kind.TELEMETRY)
            self.pending.append(self.clients[gw].publish(topic, encode_telemetry(readings, t_ms), qos=1))
            self.published += 1
        if len(self.pending) > 10_000:
            self.flush()

    def publish_event(self, code: str, event_type: str, active: bool, t_ms: int) -> None:
        e = next(x for xs in self.by_gateway.values() for x in xs if x.code == code)
        topic = build_topic(e.league, e.gateway_id, Kind.EVENT)
        self.pending.append(self.clients[e.gateway_id].publish(
            topic, encode_event(Event(code, event_type, t_ms, active)), qos=1))


def run(settings: Settings, *, equipment: list[SimEquipment], interval_s: float = 5.0,
        faults: list[Fault] | None = None, fault_rate_per_hour: float = 0.0, seed: int = 1,
        duration_s: float | None = None, stop: threading.Event | None = None,
        ground_truth: Path | None = None) -> dict[str, Any]:
    """Publish the fleet in real time until ``duration_s`` passes or ``stop`` is set."""
    stop = stop or threading.Event()
    fleet = Fleet(settings, equipment, seed=seed)
    fleet.connect()
    start_ms = int(time.time() * 1000)
    horizon_ms = int((duration_s or 24 * 3600) * 1000)
    rng = random.Random(seed)
    planned = list(faults or []) + random_faults([(e.code, e.category) for e in equipment], rng=rng,
                                                 start_ms=start_ms, horizon_ms=horizon_ms,
                                                 per_equipment_hour=fault_rate_per_hour)
    if ground_truth is not None:
        ground_truth.write_text("".join(json.dumps({"code": f.code, "kind": f.kind, "start_ms": f.start_ms,
                                                    "end_ms": f.end_ms}) + "\n" for f in planned))
    log.info("fleet started", extra={"equipment": len(equipment), "gateways": len(fleet.by_gateway),
                                     "faults": len(planned)})
    events_sent: set[tuple[str, str, bool]] = set()
    next_tick = time.monotonic()
    try:
        while not stop.is_set():
            t_ms = int(time.time() * 1000)
            if duration_s is not None and t_ms - start_ms > duration_s * 1000:
                break
            fleet.tick(t_ms, interval_s, planned)
            for f in planned:
                event = EVENT_OF_FAULT.get(f.kind)
                if event is None:
                    continue
                for active in (True, False):
                    due = f.start_ms if active else f.end_ms
                    if t_ms >= due and (f.code, f.kind + str(f.start_ms), active) not in events_sent:
                        fleet.publish_event(f.code, event, active, due)
                        events_sent.add((f.code, f.kind + str(f.start_ms), active))
            next_tick += interval_s
            stop.wait(max(0.0, next_tick - time.monotonic()))
    finally:
        fleet.close()
    return {"published": fleet.published, "faults": len(planned)}
