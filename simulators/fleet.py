"""The simulated fleet over MQTT: a `Simulation` (pure) driven on a clock, published through `MqttMux`.

- `load_fleet` reads the equipment to simulate from the registry; `demo_fleet` generates it from
  `safewatch.registry.seed.demo_registry` (no database) regrouped onto a chosen number of gateways.
- `Fleet` is the shell the tests use: `connect()`, `tick(t_ms, dt_s, faults)`, `flush()`, `close()`.
- `run` paces ticks on the simulated clock: in real time (``speed`` 1), faster (``speed`` 60: a
  minute a second), or as fast as the broker acknowledges (``speed`` 0) — but never ahead of the
  wall clock, since ingest rejects timestamps more than 5 minutes in the future. A fast run therefore
  starts in the past (``start_ms``), catches up, and then carries on in real time.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from safewatch.settings import Settings
from simulators.faults import Fault, ground_truth_text, random_faults, random_gateway_faults, scenario_key
from simulators.gateway import Outgoing
from simulators.identity import OWNER_PREFIX
from simulators.profiles import Model
from simulators.simulation import Counters, SimEquipment, Simulation
from simulators.transport import MqttMux

__all__ = ["Fleet", "Progress", "SimEquipment", "demo_fleet", "load_fleet", "plan_faults", "run",
           "write_ground_truth"]

log = logging.getLogger(__name__)

SELECT_FLEET = """
SELECT e.code, e.category, e.rated, e.gateway_id, g.league_code, e.variety
FROM equipment e JOIN gateways g ON g.id = e.gateway_id
WHERE e.status = 'in_use' AND (%(gateway_prefix)s::text IS NULL OR e.gateway_id LIKE %(gateway_prefix)s || '%%')
ORDER BY e.gateway_id, e.code
LIMIT %(limit)s
"""


def load_fleet(conn: psycopg.Connection, *, limit: int = 1_000_000, gateway_prefix: str | None = None,
               ) -> list[SimEquipment]:
    """The equipment to simulate, as the registry binds them to gateways."""
    rows = conn.execute(SELECT_FLEET, {"limit": limit, "gateway_prefix": gateway_prefix}).fetchall()
    return [SimEquipment(code, cat, {k: float(v) for k, v in (rated or {}).items()}, gw, league, variety or "")
            for code, cat, rated, gw, league, variety in rows]


def demo_fleet(n: int, *, gateways: int, seed: int = 1, gateway_prefix: str = "sim") -> list[SimEquipment]:
    """``n`` equipment of a generated demo registry, bound to about ``gateways`` gateways per league."""
    from safewatch.registry.divisions import parse_divisions, shipped_divisions_text
    from safewatch.registry.seed import demo_registry

    registry = demo_registry(parse_divisions(shipped_divisions_text()), n, seed=seed, gateway_prefix=gateway_prefix)
    league_of = {g["id"]: g["league_code"] for g in registry.gateways}
    by_league: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in registry.equipment:
        by_league[league_of[e["gateway_id"]]].append(e)
    per_gateway = max(1, math.ceil(n / max(1, gateways)))
    fleet = []
    for league, members in sorted(by_league.items()):
        for i, e in enumerate(members):
            gw = f"{gateway_prefix}-{league}-{i // per_gateway + 1:04d}"
            fleet.append(SimEquipment(e["code"], e["category"], e["rated"], gw, league, e["variety"]))
    return fleet


def plan_faults(equipment: Sequence[SimEquipment], *, seed: int, start_ms: int, horizon_ms: int,
                per_equipment_hour: float = 0.0, per_gateway_hour: float = 0.0,
                explicit: Iterable[Fault] = ()) -> list[Fault]:
    """The fault plan of a run: the explicit faults plus random ones drawn from ``seed``."""
    rng = random.Random(f"faults:{seed}")
    planned = list(explicit)
    planned += random_faults([(e.code, scenario_key(e.category, e.variety)) for e in equipment], rng=rng,
                             start_ms=start_ms,
                             horizon_ms=horizon_ms, per_equipment_hour=per_equipment_hour)
    planned += random_gateway_faults(sorted({e.gateway_id for e in equipment}), rng=rng, start_ms=start_ms,
                                     horizon_ms=horizon_ms, per_gateway_hour=per_gateway_hour)
    return sorted(planned, key=lambda f: (f.start_ms, f.code, f.kind))


def write_ground_truth(path: Path, faults: Iterable[Fault]) -> None:
    """Write the faults as CSV when ``path`` ends in .csv, else as JSON lines."""
    path.write_text(ground_truth_text(faults, fmt="csv" if path.suffix.lower() == ".csv" else "jsonl"))


class Fleet:
    """A simulation published over MQTT, one connection per gateway multiplexed in the calling thread."""

    def __init__(self, settings: Settings, equipment: Sequence[SimEquipment], *, seed: int = 1,
                 client_prefix: str = OWNER_PREFIX, presence: bool = True) -> None:
        self.settings = settings
        self.sim = Simulation(equipment, seed=seed, presence=presence)
        self._t_ms = int(time.time() * 1000)  # the simulated time of the latest tick
        self.models: dict[str, Model] = self.sim.models
        self.by_gateway: dict[str, list[SimEquipment]] = defaultdict(list)
        for e in equipment:
            self.by_gateway[e.gateway_id].append(e)
        self.mux = MqttMux(settings.mqtt, client_prefix=client_prefix, protocol5=settings.mqtt.protocol5,
                           on_reconnected=self._reconnected)

    @property
    def counters(self) -> Counters:
        return self.sim.counters

    @property
    def published(self) -> int:
        return self.mux.published

    def connect(self, t_ms: int | None = None) -> None:
        """Connect every gateway (with its last will) and publish its retained ``online`` status.

        Both only when the fleet owns its gateways' presence (`simulators.identity`).
        """
        self._t_ms = t_ms if t_ms is not None else int(time.time() * 1000)
        self.mux.connect((gw_id, gw.will()) for gw_id, gw in self.sim.gateways.items())
        self.mux.send(self.sim.connect(self._t_ms))

    def tick(self, t_ms: int, dt_s: float, faults: Iterable[Fault] = ()) -> list[Outgoing]:
        """Advance the fleet to ``t_ms`` and publish what its gateways send."""
        self._t_ms = t_ms
        out = self.sim.tick(t_ms, dt_s, faults)
        self.mux.send(out)
        self.mux.service(0)
        return out

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for the broker's acks of everything published; return how many are still unacked."""
        return self.mux.flush(timeout_s)

    def close(self, *, timeout_s: float = 30.0) -> None:
        self.flush(timeout_s)
        self.mux.close()

    def _reconnected(self, gateway_id: str) -> None:
        # A lost connection is back: its will has said offline, so the gateway says online again.
        self.mux.send(self.sim.reconnected(gateway_id, self._t_ms))


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run is: simulated time, wall time spent, and what was produced and acknowledged."""

    sim_ms: int
    elapsed_s: float
    ticks: int
    messages: int
    readings: int
    events: int
    acked: int
    pending: int

    def line(self) -> str:
        rate = self.readings / self.elapsed_s if self.elapsed_s > 0 else 0.0
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.sim_ms / 1000))
        return (f"sim {at}Z  ticks {self.ticks}  messages {self.messages} (acked {self.acked}, pending "
                f"{self.pending})  readings {self.readings} ({rate:,.0f}/s)  events {self.events}")


def run(settings: Settings, *, equipment: Sequence[SimEquipment], interval_s: float = 5.0,
        faults: Sequence[Fault] | None = None, fault_rate_per_hour: float = 0.0,
        gateway_fault_rate_per_hour: float = 0.0,
        seed: int = 1, duration_s: float | None = None, stop: threading.Event | None = None,
        ground_truth: Path | None = None, start_ms: int | None = None, speed: float = 1.0,
        progress: Callable[[Progress], None] | None = None, progress_every_s: float = 5.0,
        client_prefix: str = OWNER_PREFIX, presence: bool = True, max_pending: int = 20_000) -> Progress:
    """Publish the fleet from ``start_ms`` (default now) for ``duration_s`` simulated seconds (default: until stopped).

    ``speed`` is simulated seconds per wall second (0: as fast as acks allow); the simulated clock
    never runs ahead of the wall clock. ``presence`` and ``client_prefix``: `simulators.identity`.
    A lost broker connection never ends the run: it is restored with back-off (`simulators.transport`).
    """
    stop = stop or threading.Event()
    wall0 = time.time()
    start = start_ms if start_ms is not None else int(wall0 * 1000)
    horizon_ms = int((duration_s if duration_s is not None else 24 * 3600) * 1000)
    planned = plan_faults(equipment, seed=seed, start_ms=start, horizon_ms=horizon_ms,
                          per_equipment_hour=fault_rate_per_hour, per_gateway_hour=gateway_fault_rate_per_hour,
                          explicit=faults or ())
    if ground_truth is not None:
        write_ground_truth(ground_truth, planned)
    fleet = Fleet(settings, equipment, seed=seed, client_prefix=client_prefix, presence=presence)
    fleet.connect(start)
    log.info("fleet started", extra={"equipment": len(equipment), "gateways": len(fleet.by_gateway),
                                     "faults": len(planned), "speed": speed, "presence": presence,
                                     "client_ids": fleet.mux.client_id("<gateway>")})
    step_ms = int(interval_s * 1000)
    t_ms = start
    last_report = time.monotonic()
    t0 = time.monotonic()

    def snapshot() -> Progress:
        c = fleet.counters
        return Progress(t_ms, time.monotonic() - t0, c.ticks, fleet.mux.published, c.readings, c.events,
                        fleet.mux.acked, fleet.mux.pending)

    try:
        while not stop.is_set() and (duration_s is None or t_ms - start <= duration_s * 1000):
            live = [f for f in planned if f.start_ms <= t_ms and f.end_ms > t_ms - step_ms]
            fleet.tick(t_ms, interval_s, live)
            while fleet.mux.pending > max_pending and not stop.is_set():  # QoS 1 flow control
                fleet.mux.service(0.05)
            t_ms += step_ms
            # When the next tick is due: on the scaled clock, and never before its own time.
            due = max(wall0 + (t_ms - start) / 1000 / speed if speed > 0 else 0.0, t_ms / 1000)
            while not stop.is_set():
                remaining = due - time.time()
                if remaining <= 0:
                    break
                fleet.mux.service(min(remaining, 0.25))
            if progress is not None and time.monotonic() - last_report >= progress_every_s:
                last_report = time.monotonic()
                progress(snapshot())
    finally:
        fleet.close()
    final = snapshot()
    if progress is not None:
        progress(final)
    return final
