"""Detection quality of the alert engine on the simulators' ground truth (pure: no broker, no database).

A simulated fleet (`simulators.simulation.Simulation`, seeded) runs for ``hours`` of event time with
random faults (`simulators.fleet.plan_faults`); every message its gateways send goes, in order,
through the worker's own `alerts.worker.Engine` exactly as the live worker decodes it. A gateway
dropping its connection becomes the retained ``offline`` status the broker publishes as its last will.

Scoring, per injected fault of an equipment (gateway faults are scored on each equipment behind it):
a fault is *detected* when an alert of that equipment is raised (not suppressed) between its start and
``grace_s`` after its end; its *latency* is the event time from the fault's start to that alert.
An alert raised outside every fault window (+ grace) of its equipment is a *false alert*, reported per
equipment-day. Faults are split into those that cross a safety limit or trip a device protection
(``SAFETY_KINDS``) and the rest (slow drifts, fouling, leaks ...), which the engine may legitimately
catch late or not at all. A safety fault is *observable* when the device reported an event inside its
window: a fault can stay invisible (a receiver's failed unloader does nothing while its compressor is off).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from alerts.engine.step import RaiseAlert
from alerts.store import EquipmentInfo
from alerts.worker import Engine
from safewatch.contract import GatewayState, Kind, build_topic, encode_status
from safewatch.mqtt import Delivery
from simulators.faults import Fault
from simulators.fleet import demo_fleet, plan_faults
from simulators.simulation import SimEquipment, Simulation

# Faults that cross a safety limit or trip a device protection: each must raise an alert.
SAFETY_KINDS = frozenset({
    "feed_pump_failure", "pressure_controller_stuck", "overpressure", "feed_valve_stuck_open", "flame_failure",
    "passenger_trapped", "safety_circuit_open", "unintended_car_movement", "stopped_outside_door_zone",
    "overshoot_top", "overshoot_bottom", "overspeed", "door_open_fault", "door_close_fault", "power_failure",
})


@dataclass
class Quality:
    equipment: int
    hours: float
    faults: int = 0
    detected: int = 0
    safety_faults: int = 0
    safety_detected: int = 0
    observable_safety_faults: int = 0  # safety faults whose device reported one of their events
    observable_safety_detected: int = 0
    latencies_s: list[float] = field(default_factory=list)
    safety_latencies_s: list[float] = field(default_factory=list)
    alerts: int = 0
    false_alerts: int = 0
    false_by_rule: Counter[str] = field(default_factory=Counter)
    missed: Counter[str] = field(default_factory=Counter)
    per_kind: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    @property
    def recall(self) -> float:
        return self.detected / self.faults if self.faults else 1.0

    @property
    def safety_recall(self) -> float:
        return self.safety_detected / self.safety_faults if self.safety_faults else 1.0

    @property
    def observable_safety_recall(self) -> float:
        if not self.observable_safety_faults:
            return 1.0
        return self.observable_safety_detected / self.observable_safety_faults

    @property
    def false_per_equipment_day(self) -> float:
        return self.false_alerts / (self.equipment * self.hours / 24)

    def summary(self) -> dict[str, Any]:
        def pct(xs: list[float], q: int) -> float | None:
            return round(statistics.quantiles(xs, n=100)[q - 1], 1) if len(xs) >= 2 else (xs[0] if xs else None)

        return {
            "equipment": self.equipment, "hours": self.hours, "faults": self.faults,
            "recall": round(self.recall, 3), "safety_faults": self.safety_faults,
            "safety_recall": round(self.safety_recall, 3),
            "observable_safety_faults": self.observable_safety_faults,
            "observable_safety_recall": round(self.observable_safety_recall, 3),
            "safety_latency_s_p50": pct(self.safety_latencies_s, 50),
            "safety_latency_s_p99": pct(self.safety_latencies_s, 99),
            "alerts": self.alerts, "false_alerts": self.false_alerts,
            "false_per_equipment_day": round(self.false_per_equipment_day, 3),
            "false_by_rule": dict(self.false_by_rule.most_common(8)),
            "missed": dict(self.missed.most_common()),
        }


def infos_of(fleet: Iterable[SimEquipment]) -> list[EquipmentInfo]:
    """Registry rows for a simulated fleet (ids by position; the banner is the league for scoring)."""
    return [EquipmentInfo(i + 1, e.code, e.category, dict(e.rated), e.league, e.league, "in_use", e.gateway_id)
            for i, e in enumerate(fleet)]


def run_quality(*, n: int = 120, gateways: int = 12, hours: float = 6.0, dt_s: float = 5.0, seed: int = 7,
                fault_rate: float = 0.1, grace_s: float = 300.0, start_ms: int = 1_764_000_000_000) -> Quality:
    """Simulate, evaluate and score; see the module docstring."""
    fleet = demo_fleet(n, gateways=gateways, seed=seed, gateway_prefix="q")
    horizon_ms = int(hours * 3600_000)
    faults = plan_faults(fleet, seed=seed, start_ms=start_ms + 3600_000, horizon_ms=horizon_ms - 3600_000,
                         per_equipment_hour=fault_rate)
    engine = Engine()
    engine.add(infos_of(fleet))
    sim = Simulation(fleet, seed=seed)
    league_of = {e.gateway_id: e.league for e in fleet}
    raised: list[RaiseAlert] = []
    events: dict[str, list[int]] = defaultdict(list)  # equipment code → times of device events (active)
    t = start_ms
    deliveries = _deliveries(sim.connect(t), league_of, t)
    raised += _raises(engine.evaluate(deliveries, t)[0])
    steps = int(horizon_ms / (dt_s * 1000))
    for _ in range(steps):
        t += int(dt_s * 1000)
        deliveries = _deliveries(sim.tick(t, dt_s, faults), league_of, t)
        for d in deliveries:
            if d.topic.endswith("/event"):
                doc = orjson.loads(d.payload)
                if doc.get("active", True):
                    events[doc["equipment"]].append(int(doc["ts"]))
        raised += _raises(engine.evaluate(deliveries, t)[0])
    return score(fleet, engine, faults, raised, hours=hours, grace_s=grace_s, events=events)


def _deliveries(out: Iterable[Any], league_of: dict[str, str], t_ms: int) -> list[Delivery]:
    ds = []
    for o in out:
        if o.action == "publish":
            ds.append(Delivery(o.topic, o.payload, 0, 1, 0, t_ms / 1000))
        elif o.action == "drop":  # the broker publishes the last will
            topic = build_topic(league_of[o.gateway_id], o.gateway_id, Kind.STATUS)
            ds.append(Delivery(topic, encode_status(GatewayState.OFFLINE), 0, 1, 0, t_ms / 1000))
    return ds


def _raises(effects: Iterable[Any]) -> list[RaiseAlert]:
    return [e for e in effects if isinstance(e, RaiseAlert) and e.suppressed_by is None]


def score(fleet: list[SimEquipment], engine: Engine, faults: list[Fault], raised: list[RaiseAlert], *,
          hours: float, grace_s: float, events: dict[str, list[int]]) -> Quality:
    """Match alerts to faults (see the module docstring); ``events`` tells which faults the device reported."""
    by_code = {e.code: e for e in fleet}
    code_of = {i.id: i.code for i in engine.equipment.values()}
    windows: dict[str, list[tuple[int, int, Fault]]] = defaultdict(list)
    for f in faults:
        targets = [e.code for e in fleet if e.gateway_id == f.code] if f.scope == "gateway" else [f.code]
        for code in targets:
            windows[code].append((f.start_ms, f.end_ms + int(grace_s * 1000), f))
    q = Quality(len(fleet), hours, alerts=len(raised))
    alerts_of: dict[str, list[RaiseAlert]] = defaultdict(list)
    for a in raised:
        code = code_of[a.equipment_id]
        alerts_of[code].append(a)
        if not any(lo <= a.ts_ms <= hi for lo, hi, _ in windows.get(code, ())):
            q.false_alerts += 1
            q.false_by_rule[a.rule_key] += 1
    for f in faults:
        if f.scope != "equipment" or f.code not in by_code:
            continue
        hits = [a.ts_ms for a in alerts_of.get(f.code, ()) if f.start_ms <= a.ts_ms <= f.end_ms + grace_s * 1000]
        safety = f.kind in SAFETY_KINDS
        grace_ms = int(grace_s * 1000)
        observable = safety and any(f.start_ms <= t <= f.end_ms + grace_ms for t in events.get(f.code, ()))
        q.faults += 1
        q.safety_faults += safety
        q.observable_safety_faults += observable
        q.per_kind[f.kind][0] += 1
        if hits:
            q.detected += 1
            q.safety_detected += safety
            q.observable_safety_detected += observable
            q.per_kind[f.kind][1] += 1
            latency = (min(hits) - f.start_ms) / 1000
            q.latencies_s.append(latency)
            if safety:
                q.safety_latencies_s.append(latency)
        else:
            q.missed[f.kind] += 1
    return q
