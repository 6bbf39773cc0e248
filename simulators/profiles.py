"""Signal models of the three categories (pure: state in, readings out, randomness from a seeded RNG).

Each model advances on a simulated clock; active fault kinds change its physics, so a fault
produces the signature the alert engine should catch.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field


@dataclass(slots=True)
class BoilerModel:
    """A steam boiler: drum pressure held near 0.85 × rated by a pressure controller, level near 0 mm."""

    rated: Mapping[str, float]
    rng: random.Random
    pressure: float = 0.0
    level: float = 0.0

    def __post_init__(self) -> None:
        self.pressure = 0.85 * self.rated.get("rated_pressure", 1.25)

    def step(self, t_s: float, dt_s: float, faults: Collection[str]) -> dict[str, float]:
        rated = self.rated.get("rated_pressure", 1.25)
        load = 0.7 + 0.2 * math.sin(2 * math.pi * t_s / 3600.0)  # an hourly load swing
        valve = self.rated.get("safety_valve_low", 1.04 * rated)
        if "overpressure" in faults:
            # A stuck pressure controller keeps firing: pressure climbs ~1 % of rated a second
            # until the safety valve lifts at its set pressure and holds it there.
            self.pressure = min(valve, self.pressure + 0.01 * rated * dt_s) + self.rng.gauss(0, 0.002 * rated)
        else:
            target = 0.85 * rated
            self.pressure += (target - self.pressure) * min(1.0, dt_s / 20.0) + self.rng.gauss(0, 0.003 * rated)
        self.pressure = max(0.0, self.pressure)
        level_target = -90.0 if "feed_pump_failure" in faults else 0.0
        self.level += (level_target - self.level) * min(1.0, dt_s / 30.0) + self.rng.gauss(0, 2.0)
        burner = 0.0 if self.level < -80 else 1.0  # low-water cut-off stops the burner
        return {
            "drum_pressure": round(self.pressure, 4), "drum_level": round(self.level, 1),
            "steam_temp": round(100 + 60 * self.pressure ** 0.5 + self.rng.gauss(0, 0.5), 2),
            "steam_flow": round(load * self.rated.get("rated_evaporation", 4.0), 3),
            "feedwater_temp": round(104 + self.rng.gauss(0, 0.3), 2),
            "flue_gas_temp": round(180 + 20 * load + self.rng.gauss(0, 1.0), 1),
            "flue_gas_o2": round(3.5 + self.rng.gauss(0, 0.2), 2), "burner_on": burner,
        }


@dataclass(slots=True)
class VesselModel:
    """An air receiver: the compressor loads at ≈ 0.75 × design and unloads at ≈ 0.875 × design."""

    rated: Mapping[str, float]
    rng: random.Random
    pressure: float = 0.0
    compressor: bool = True

    def __post_init__(self) -> None:
        self.pressure = 0.8 * self.rated.get("design_pressure", 0.8)

    def step(self, t_s: float, dt_s: float, faults: Collection[str]) -> dict[str, float]:
        design = self.rated.get("design_pressure", 0.8)
        unload_at = 1.0 * design if "overpressure" in faults else 0.875 * design
        if self.pressure >= unload_at:
            self.compressor = False
        elif self.pressure <= 0.75 * design:
            self.compressor = True
        leak = 3.0 if "leak" in faults else 1.0
        rate = (0.004 if self.compressor else 0.0) - 0.0015 * leak
        self.pressure = max(0.0, self.pressure + rate * design * dt_s + self.rng.gauss(0, 0.002 * design))
        return {"vessel_pressure": round(self.pressure, 4),
                "vessel_temp": round(35 + 10 * self.compressor + self.rng.gauss(0, 0.3), 2),
                "compressor_on": float(self.compressor)}


@dataclass(slots=True)
class ElevatorModel:
    """A traction elevator travelling between floors at up to its rated speed."""

    rated: Mapping[str, float]
    rng: random.Random
    floor: float = 1.0
    target: float = 1.0
    trips: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def step(self, t_s: float, dt_s: float, faults: Collection[str]) -> dict[str, float]:
        rated_speed = self.rated.get("rated_speed", 1.5)
        floors = self.rated.get("floors", 10.0)
        if abs(self.target - self.floor) < 0.05 and self.rng.random() < 0.3:
            self.target = float(self.rng.randint(1, int(floors)))
            self.trips += 1
        moving = abs(self.target - self.floor) >= 0.05 and "passenger_trapped" not in faults
        speed = (1.25 if "overspeed" in faults else 1.0) * rated_speed if moving else 0.0
        if moving:
            step_floors = min(abs(self.target - self.floor), speed * dt_s / 3.0)
            self.floor += math.copysign(step_floors, self.target - self.floor)
        return {"service_mode": 1.0, "car_moving": float(moving),
                "direction": 0.0 if not moving else (1.0 if self.target > self.floor else 2.0),
                "door_zone": float(abs(self.floor - round(self.floor)) < 0.1), "floor": round(self.floor, 2),
                "door_locked": float(moving or "passenger_trapped" in faults),
                "passenger_present": float(moving or "passenger_trapped" in faults),
                "mains_power": 1.0, "speed": round(speed + abs(self.rng.gauss(0, 0.01)), 3),
                "load": round(max(0.0, self.rng.gauss(30, 10)), 1), "trips": self.trips}


Model = BoilerModel | VesselModel | ElevatorModel


def model_for(category: str, rated: Mapping[str, float], rng: random.Random) -> Model:
    """The model of an equipment category ('1000', '2000', '3000')."""
    if category == "1000":
        return BoilerModel(rated, rng)
    if category == "2000":
        return VesselModel(rated, rng)
    return ElevatorModel(rated, rng)
