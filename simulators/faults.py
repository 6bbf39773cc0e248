"""Injected faults and their ground truth (pure).

A `Fault` is what a test or benchmark scores the alert engine against: which equipment (or gateway)
suffered which kind, from when until when. Each kind has a physical signature produced by the models
in `simulators.profiles` (or by the gateway in `simulators.gateway`) and the device events it is
expected to raise, listed in `FAULT_KINDS`.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import orjson


@dataclass(frozen=True, slots=True)
class Fault:
    """Ground truth: ``code`` suffers ``kind`` from ``start_ms`` until ``end_ms`` (epoch ms, end excluded).

    ``code`` is an equipment code, or a gateway id when ``scope`` is "gateway". ``metric`` and
    ``magnitude`` parameterise sensor faults (drift in units per hour, spike height), fouling (°C per
    hour), a leak (share of the compressor's delivery), clock skew (ms) and out-of-order depth.
    """

    code: str
    kind: str
    start_ms: int
    end_ms: int
    metric: str | None = None
    magnitude: float | None = None
    scope: str = "equipment"

    def active(self, t_ms: int) -> bool:
        return self.start_ms <= t_ms < self.end_ms


class FaultKind(NamedTuple):
    """One kind of fault: its categories, the events it should raise and a typical duration."""

    categories: tuple[str, ...]
    events: tuple[str, ...]
    duration_s: float
    signature: str


_B, _V, _E, _ALL = ("1000",), ("2000",), ("3000",), ("1000", "2000", "3000")

FAULT_KINDS: dict[str, FaultKind] = {
    # Boilers.
    "feed_pump_failure": FaultKind(_B, ("low_water_cutoff",), 600,
                                   "feed stops, level falls ≈ 1 mm/s, cut-off at −100 mm"),
    "pressure_controller_stuck": FaultKind(_B, ("overpressure_interlock",), 600,
                                           "burner stuck at full fire; the interlock trips it, repeatedly"),
    "overpressure": FaultKind(_B + _V, ("safety_valve_lift", "vessel_safety_valve_lift"), 300,
                              "boiler: controller stuck with the interlock bypassed → safety valve lifts; "
                              "vessel: unloader failed → safety valve lifts"),
    "interlock_bypassed": FaultKind(_B, (), 3600, "latent: shows only with a stuck pressure controller"),
    "feed_valve_stuck_open": FaultKind(_B, ("high_water_level",), 600, "level rises past +75 mm"),
    "flame_failure": FaultKind(_B, ("flame_failure",), 300, "flame lost, burner locked out, pressure decays"),
    "fouling": FaultKind(_B, (), 6 * 3600, "flue-gas temperature creeps up (20 °C/h by default)"),
    "circulation_pump_failure": FaultKind(_B, (), 900, "hot-water boiler: outlet temperature runs up to the "
                                          "over-temperature limiter, which cuts the burner; return cools"),
    # Pressure vessels.
    "leak": FaultKind(_V, (), 1800, "faster pressure decay when unloaded, compressor duty rises"),
    "safety_valve_failed": FaultKind(_B + _V, ("vessel_overpressure",), 300,
                                     "latent: with over-pressure the pressure passes the design pressure"),
    "temperature_excursion": FaultKind(_V, (), 1800, "aftercooler failed: air temperature towards 70-100 °C"),
    # Elevators (GB/T 24476 numbering in the events' details.code).
    "passenger_trapped": FaultKind(_E, ("passenger_trapped", "stopped_outside_door_zone"), 900,
                                   "car stops between floors with people inside"),
    "safety_circuit_open": FaultKind(_E, ("safety_circuit_open", "passenger_trapped"), 600,
                                     "emergency stop while running"),
    "unintended_car_movement": FaultKind(_E, ("unintended_car_movement", "stopped_outside_door_zone"), 900,
                                         "car moves ≈ 1 m with the doors open, UCMP stops it"),
    "stopped_outside_door_zone": FaultKind(_E, ("stopped_outside_door_zone",), 600, "levelling fault, car empty"),
    "overshoot_top": FaultKind(_E, ("overshoot_top",), 900, "car passes the top landing onto the final limit"),
    "overshoot_bottom": FaultKind(_E, ("overshoot_bottom",), 900, "car passes the bottom landing onto the buffer"),
    "overspeed": FaultKind(_E, ("overspeed", "safety_circuit_open"), 900,
                           "runaway: speed passes 1.2 × rated, the governor trips the safety gear"),
    "door_open_fault": FaultKind(_E, ("door_open_fault", "passenger_trapped"), 600, "doors do not open at a landing"),
    "door_close_fault": FaultKind(_E, ("door_close_fault",), 600, "doors do not close; car out of service"),
    "power_failure": FaultKind(_E, (), 600, "mains lost, car stops where it is; anyone inside is trapped"),
    # Sensors of any equipment (``metric`` names the sensor; default per model).
    "sensor_drift": FaultKind(_ALL, (), 3 * 3600, "reading drifts linearly (magnitude: units per hour)"),
    "sensor_stuck": FaultKind(_ALL, (), 3600, "reading frozen at its value when the fault began"),
    "sensor_spikes": FaultKind(_ALL, (), 1800, "three samples in ten jump by ± magnitude"),
}

SENSOR_FAULTS: tuple[str, ...] = ("sensor_drift", "sensor_stuck", "sensor_spikes")

#: What a gateway can do wrong (scope "gateway"); see simulators.gateway.
GATEWAY_FAULTS: dict[str, str] = {
    "disconnect": "connection dropped without DISCONNECT (the broker publishes the last will); readings buffered "
                  "and sent in a burst on reconnection",
    "clock_skew": "timestamps off by magnitude ms (default +10 min: ingest rejects > 5 min ahead)",
    "duplicate": "every message sent twice",
    "out_of_order": "messages held and released newest first, magnitude (default 3) at a time",
    "burst": "messages held during the window and all sent at its end",
}

# What random_faults draws from, per category: kinds with an observable signature (latent ones paired).
RANDOM_SCENARIOS: dict[str, tuple[tuple[str, ...], ...]] = {
    "1000": (("feed_pump_failure",), ("pressure_controller_stuck",), ("overpressure",), ("fouling",),
             ("flame_failure",), ("feed_valve_stuck_open",), ("sensor_drift",), ("sensor_stuck",), ("sensor_spikes",)),
    # Hot-water boilers (variety 12xx): no drum level, a circulation pump instead of a feed pump.
    "1200": (("circulation_pump_failure",), ("overpressure",), ("fouling",), ("flame_failure",), ("sensor_drift",),
             ("sensor_stuck",), ("sensor_spikes",)),
    "2000": (("leak",), ("overpressure",), ("overpressure", "safety_valve_failed"), ("temperature_excursion",),
             ("sensor_drift",), ("sensor_stuck",), ("sensor_spikes",)),
    "3000": (("passenger_trapped",), ("safety_circuit_open",), ("unintended_car_movement",),
             ("stopped_outside_door_zone",), ("overshoot_top",), ("overshoot_bottom",), ("overspeed",),
             ("door_open_fault",), ("door_close_fault",), ("power_failure",), ("sensor_spikes",)),
}


def check_fault(fault: Fault, category: str | None = None) -> None:
    """Raise ValueError naming what is wrong with a fault specification."""
    if fault.scope == "gateway":
        if fault.kind not in GATEWAY_FAULTS:
            raise ValueError(f"gateway fault {fault.kind!r} is not one of {sorted(GATEWAY_FAULTS)}")
    elif fault.kind not in FAULT_KINDS:
        raise ValueError(f"fault {fault.kind!r} is not one of {sorted(FAULT_KINDS)}")
    elif category is not None and category not in FAULT_KINDS[fault.kind].categories:
        raise ValueError(f"fault {fault.kind!r} does not apply to category {category} "
                         f"(it applies to {', '.join(FAULT_KINDS[fault.kind].categories)})")
    if fault.end_ms <= fault.start_ms:
        raise ValueError(f"fault {fault.kind!r} on {fault.code} ends before it starts")


def scenario_key(category: str, variety: str = "") -> str:
    """Which `RANDOM_SCENARIOS` an equipment draws from (hot-water boilers have their own)."""
    return "1200" if category == "1000" and variety.startswith("12") else category


def _event_count(sources: int, per_source_hour: float, horizon_ms: int, rng: random.Random) -> int:
    """How many events ``sources`` sources at ``per_source_hour`` each give over the horizon: the expected
    number, its fraction rounded up at random so that the mean is exact."""
    expected = sources * per_source_hour * horizon_ms / 3_600_000
    return int(expected) + (1 if rng.random() < expected - int(expected) else 0)


def random_faults(equipment: Sequence[tuple[str, str]], *, rng: random.Random, start_ms: int, horizon_ms: int,
                  per_equipment_hour: float, duration_ms: int | None = None) -> list[Fault]:
    """Faults at ``per_equipment_hour`` per equipment over the horizon, for (code, `scenario_key`) pairs.

    Each draw is a scenario of its category (a latent fault comes with the one that reveals it);
    durations are the kinds' typical ones unless ``duration_ms`` is given.
    """
    if not equipment or per_equipment_hour <= 0:
        return []
    count = _event_count(len(equipment), per_equipment_hour, horizon_ms, rng)
    faults: list[Fault] = []
    for _ in range(count):
        code, category = rng.choice(equipment)
        at = start_ms + rng.randrange(max(1, horizon_ms))
        scenario = rng.choice(RANDOM_SCENARIOS[category])
        length = duration_ms or int(1000 * max(FAULT_KINDS[k].duration_s for k in scenario) * rng.uniform(0.5, 1.5))
        faults.extend(Fault(code, kind, at, at + length) for kind in scenario)
    return sorted(faults, key=lambda f: (f.start_ms, f.code, f.kind))


def random_gateway_faults(gateways: Sequence[str], *, rng: random.Random, start_ms: int, horizon_ms: int,
                          per_gateway_hour: float) -> list[Fault]:
    """Gateway misbehaviour at ``per_gateway_hour`` per gateway, each lasting 1-10 minutes."""
    if not gateways or per_gateway_hour <= 0:
        return []
    count = _event_count(len(gateways), per_gateway_hour, horizon_ms, rng)
    faults: list[Fault] = []
    for _ in range(count):
        at = start_ms + rng.randrange(max(1, horizon_ms))
        faults.append(Fault(rng.choice(gateways), rng.choice(sorted(GATEWAY_FAULTS)), at,
                            at + rng.randint(60_000, 600_000), scope="gateway"))
    return sorted(faults, key=lambda f: (f.start_ms, f.code, f.kind))


GROUND_TRUTH_FIELDS = ("code", "kind", "start_ms", "end_ms", "metric", "magnitude", "scope")


def ground_truth_text(faults: Iterable[Fault], *, fmt: str = "jsonl") -> str:
    """The faults as JSON lines (``jsonl``) or CSV with a header (``csv``), in a stable order."""
    ordered = sorted(faults, key=lambda f: (f.start_ms, f.code, f.kind))
    if fmt == "jsonl":
        return "".join(orjson.dumps({**asdict(f), "expected_events": list(_expected(f))}).decode() + "\n"
                       for f in ordered)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*GROUND_TRUTH_FIELDS, "expected_events"])
        for f in ordered:
            cells = [getattr(f, name) for name in GROUND_TRUTH_FIELDS]
            writer.writerow([*("" if c is None else c for c in cells), " ".join(_expected(f))])
        return out.getvalue()
    raise ValueError(f"ground-truth format {fmt!r} is not 'jsonl' or 'csv'")


def _expected(fault: Fault) -> tuple[str, ...]:
    kind = FAULT_KINDS.get(fault.kind) if fault.scope == "equipment" else None
    return kind.events if kind else ()


def parse_fault_spec(spec: str, *, start_ms: int, scope: str = "equipment") -> Fault:
    """``CODE:KIND:START_S:DURATION_S[:METRIC_OR_MAGNITUDE[:MAGNITUDE]]`` → a `Fault`, START relative to ``start_ms``.

    Examples: ``110015...:feed_pump_failure:60:600``, ``110015...:sensor_drift:0:3600:drum_pressure:0.05``,
    ``gw-150102-001:clock_skew:30:120:600000`` (gateway scope).
    """
    parts = spec.split(":")
    if not 4 <= len(parts) <= 6:
        raise ValueError(f"{spec!r} is not CODE:KIND:START_S:DURATION_S[:METRIC][:MAGNITUDE]")
    code, kind, start_s, length_s, *rest = parts
    try:
        begin = start_ms + int(float(start_s) * 1000)
        end = begin + int(float(length_s) * 1000)
    except ValueError:
        raise ValueError(f"{spec!r}: START_S and DURATION_S must be numbers of seconds") from None
    metric: str | None = None
    magnitude: float | None = None
    for item in rest:
        try:
            magnitude = float(item)
        except ValueError:
            metric = item
    fault = Fault(code, kind, begin, end, metric=metric, magnitude=magnitude, scope=scope)
    check_fault(fault)
    return fault
