"""Injected faults with their ground truth (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass

# Fault kinds each category can suffer, and whether the device also reports a discrete event.
FAULT_KINDS: dict[str, tuple[str, ...]] = {
    "1000": ("overpressure", "feed_pump_failure"),
    "2000": ("overpressure", "leak"),
    "3000": ("overspeed", "passenger_trapped"),
}
EVENT_OF_FAULT = {"passenger_trapped": "passenger_trapped", "feed_pump_failure": "low_water_cutoff"}


@dataclass(frozen=True, slots=True)
class Fault:
    """Ground truth: equipment ``code`` suffers ``kind`` from ``start_ms`` until ``end_ms``."""

    code: str
    kind: str
    start_ms: int
    end_ms: int

    def active(self, t_ms: int) -> bool:
        return self.start_ms <= t_ms < self.end_ms


def random_faults(equipment: list[tuple[str, str]], *, rng: random.Random, start_ms: int, horizon_ms: int,
                  per_equipment_hour: float, duration_ms: int = 120_000) -> list[Fault]:
    """Faults at ``per_equipment_hour`` per equipment over the horizon, for (code, category) pairs."""
    expected = len(equipment) * per_equipment_hour * horizon_ms / 3_600_000
    count = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
    faults = []
    for _ in range(count):
        code, category = rng.choice(equipment)
        at = start_ms + rng.randrange(max(1, horizon_ms))
        faults.append(Fault(code, rng.choice(FAULT_KINDS[category]), at, at + duration_ms))
    return sorted(faults, key=lambda f: f.start_ms)
