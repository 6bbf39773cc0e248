"""The simulated fleet without any I/O: models behind gateways, faults applied, messages out.

Deterministic: every model draws from its own RNG seeded by (seed, equipment code), so the same
seed, equipment and fault plan give a byte-identical stream whatever the fleet's order or size.
Time is the simulated clock passed to `Simulation.tick`; nothing here reads the wall clock.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from safewatch.contract import Event
from simulators.faults import Fault
from simulators.gateway import Gateway, Outgoing
from simulators.profiles import Model, model_for


@dataclass(frozen=True, slots=True)
class SimEquipment:
    """One equipment as the registry binds it to a gateway."""

    code: str
    category: str
    rated: Mapping[str, float]
    gateway_id: str
    league: str
    variety: str = field(default="")


@dataclass(slots=True)
class Counters:
    """What a simulation has produced so far."""

    messages: int = 0
    readings: int = 0
    events: int = 0
    ticks: int = 0


class Simulation:
    """Advance every model to a tick's time and turn its readings and events into gateway messages."""

    def __init__(self, equipment: Sequence[SimEquipment], *, seed: int = 1, presence: bool = True) -> None:
        self.equipment = {e.code: e for e in equipment}
        self.models: dict[str, Model] = {e.code: model_for(e.category, e.rated, random.Random(f"{seed}:{e.code}"),
                                                                 e.variety)
                                         for e in equipment}
        self.members: dict[str, list[str]] = defaultdict(list)
        self.gateways: dict[str, Gateway] = {}
        for e in equipment:
            self.members[e.gateway_id].append(e.code)
            if e.gateway_id not in self.gateways:
                self.gateways[e.gateway_id] = Gateway(e.gateway_id, e.league, presence=presence)
        self.counters = Counters()

    def connect(self, t_ms: int) -> list[Outgoing]:
        """Every gateway's retained ``online`` status."""
        out = [o for gw in self.gateways.values() for o in gw.online(t_ms)]
        self.counters.messages += len(out)
        return out

    def reconnected(self, gateway_id: str, t_ms: int) -> list[Outgoing]:
        """What a gateway sends when its lost connection is back: ``online`` again (its will said offline)."""
        out = self.gateways[gateway_id].online(t_ms)
        self.counters.messages += len(out)
        return out

    def tick(self, t_ms: int, dt_s: float, faults: Iterable[Fault] = ()) -> list[Outgoing]:
        """Advance to ``t_ms`` (``dt_s`` after the previous tick) and return what the gateways do."""
        by_target = _faults_by_target(faults, t_ms, int(dt_s * 1000))
        t_s = t_ms / 1000.0
        out: list[Outgoing] = []
        for gw_id, codes in self.members.items():
            readings: dict[str, dict[str, float]] = {}
            events: list[Event] = []
            for code in codes:
                model = self.models[code]
                readings[code] = model.step(t_s, dt_s, by_target.get(code, _NONE))
                if model.events:
                    events += [Event(code, e.type, e.ts_ms, e.active, e.details) for e in model.take_events()]
            gw_faults = {k: f for k, f in by_target.get(gw_id, _NONE).items()
                         if f.scope == "gateway" and f.active(t_ms)}
            sent = self.gateways[gw_id].emit(t_ms, readings, events, gw_faults)
            out += sent
            self.counters.readings += sum(len(v) for v in readings.values())
            self.counters.events += len(events)
        self.counters.messages += sum(1 for o in out if o.action == "publish")
        self.counters.ticks += 1
        return out


_NONE: dict[str, Fault] = {}


def _faults_by_target(faults: Iterable[Fault], t_ms: int, dt_ms: int) -> dict[str, dict[str, Fault]]:
    """target → kind → fault, for faults overlapping the step (t − dt, t] (a model sees the part it lives)."""
    by: dict[str, dict[str, Fault]] = {}
    lo = t_ms - dt_ms
    for f in faults:
        if f.start_ms <= t_ms and f.end_ms > lo:
            by.setdefault(f.code, {})[f.kind] = f
    return by
