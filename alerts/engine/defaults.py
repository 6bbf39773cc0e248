"""Default rule sets for the three categories; each limit cites where its value comes from.

Values marked (check) in DOMAIN.md are editable defaults, not regulation: per-equipment overrides
come from the registry's rated parameters.
"""

from __future__ import annotations

from alerts.engine.rules import Direction, Limit, Rule
from safewatch.contract import Category, Severity

_B, _V, _E = Category.BOILER, Category.PRESSURE_VESSEL, Category.ELEVATOR
H, L = Direction.HIGH, Direction.LOW

DEFAULT_RULES: tuple[Rule, ...] = (
    # Boiler drum pressure. DOMAIN.md worked example (TSG 11-2020): 1.25 MPa boiler, over-pressure
    # alarm ≈ 1.20 MPa (0.96 × rated), lower safety valve 1.30 MPa (1.04 × rated, TSG 11 for
    # 0.8 < p ≤ 5.9 MPa). ISA-18.2 starting values: pressure deadband 2 %, 15 s on-delay (check).
    Rule("boiler.drum_pressure.high", _B, "drum_pressure", H, Limit(param="rated_pressure", factor=0.96),
         Severity.MAJOR, deadband=0.02, on_delay_s=0, off_delay_s=0, message="drum pressure above alarm limit"),
    Rule("boiler.drum_pressure.high_high", _B, "drum_pressure", H,
         Limit(param="safety_valve_low", factor=1.0), Severity.CRITICAL, deadband=0.02,
         message="drum pressure at the lower safety-valve set pressure"),
    # Drum level: alarms at ≈ −50…−75 mm, low-low cut-off −75…−100 mm (DOMAIN.md worked example).
    Rule("boiler.drum_level.low", _B, "drum_level", L, Limit(absolute=-50.0), Severity.MAJOR, deadband=5.0,
         on_delay_s=0, message="drum water level low"),
    Rule("boiler.drum_level.low_low", _B, "drum_level", L, Limit(absolute=-75.0), Severity.CRITICAL,
         deadband=5.0, message="drum water level at low-low cut-off"),
    # Pressure vessel: 0.8 MPa receiver, high alarm ≈ 0.75 MPa (0.9375 × design), safety valve
    # 0.77–0.80 MPa ≤ design (TSG 21-2016, DOMAIN.md worked example).
    Rule("vessel.pressure.high", _V, "vessel_pressure", H, Limit(param="design_pressure", factor=0.9375),
         Severity.MAJOR, deadband=0.016, message="vessel pressure above alarm limit"),
    Rule("vessel.pressure.high_high", _V, "vessel_pressure", H, Limit(param="safety_valve_set", factor=1.0),
         Severity.CRITICAL, deadband=0.016, message="vessel pressure at the safety-valve set pressure"),
    # Elevator over-speed: retrofit boxes judge 1.2 × rated speed (DOMAIN.md, check); warn at 1.1.
    Rule("elevator.speed.high", _E, "speed", H, Limit(param="rated_speed", factor=1.1), Severity.MAJOR,
         deadband=0.05, message="car speed above 110 % of rated"),
    Rule("elevator.speed.high_high", _E, "speed", H, Limit(param="rated_speed", factor=1.2), Severity.CRITICAL,
         deadband=0.05, message="car over-speed (120 % of rated)"),
)
