"""Default rule sets for the three categories; each limit cites where its value comes from.

Values marked (check) in DOMAIN.md are editable defaults, not regulation: limits are written against
the equipment's rated parameters from the registry, and a per-equipment override (table
``alert_rule_overrides``, API ``/api/v1/alerts/rules/overrides``) changes one rule for one equipment.

Sources: DOMAIN.md (the project's domain reference) and the regulations it summarises — TSG 11-2020
(boilers), TSG 21-2016 (pressure vessels), TSG T7001/T5002 and GB/T 24476 (elevators), TSG 08 (use
registration, inspection periods); ISA-18.2 / EEMUA 191 for deadbands, delays and nuisance control.
"""

from __future__ import annotations

from alerts.engine.anomaly import AnomalyConfig
from alerts.engine.rules import Direction, Limit, Rule, RuleKind
from safewatch.contract import Category, Severity

_B, _V, _E = Category.BOILER, Category.PRESSURE_VESSEL, Category.ELEVATOR
H, L = Direction.HIGH, Direction.LOW
K = RuleKind

# Anomaly detection inside the engine: the NAB-scored detector with smaller tables and a learning
# period of 720 readings (an hour at 5 s): at most 15.4 KB of numpy state per watched metric while
# learning and 3.9 KB after (AnomalyConfig.memory_bound_bytes). Time-of-day contexts are off: a day
# of 5 s readings is 17,280 readings, and a daily pattern would take days to learn per equipment.
# A value 20 % of the seen range beyond it (not NAB's 5 %) scores 1: the first hour rarely sees a
# boiler's whole daily load swing.
# Threshold 0.8 (tail probability ≈ 1e-8): on the simulators' fleet, 0.6 with a 360-reading learning
# period and 5 % tolerance raised most of the false alerts for no gain in recall (bench/alerts/quality.py).
ENGINE_ANOMALY = AnomalyConfig(learning_period=720, table_slots=2048, tod_buckets=0, rest_period=120,
                               spatial_tolerance=0.2)
ANOMALY_SCORE = 0.8
ANOMALY_CLEAR_S = 300.0  # an anomaly alert returns to normal after 5 min without another high score

# The expected report interval is the rated parameter ``report_interval_s`` when the registry has it;
# silence for 3 intervals (or 5 min without it) is "no data" (ARCHITECTURE.md: silence longer than
# expected for that equipment).
SILENCE = Limit(param="report_interval_s", factor=3.0, fallback=300.0)
_GW = ("no_data.gateway_offline",)


def _common(cat: Category) -> tuple[Rule, ...]:
    """No-data rules every category has: the gateway's last will, and silence."""
    return (
        Rule("no_data.gateway_offline", cat, "gateway_status", H,
             Limit(absolute=0.5), Severity.MAJOR, kind=K.NO_DATA,
             message="gateway offline (its MQTT last will): no monitoring of this equipment"),
        Rule("no_data.silent", cat, "readings", H, SILENCE, Severity.MINOR, kind=K.NO_DATA, covered_by=_GW,
             message="no readings from this equipment"),
    )


BOILER_RULES: tuple[Rule, ...] = (
    # Drum pressure. DOMAIN.md worked example (TSG 11-2020): 1.25 MPa boiler, over-pressure alarm
    # ≈ 1.20 MPa (0.96 × rated); lower safety valve 1.30 MPa (1.04 × rated, TSG 11 for 0.8 < p ≤ 5.9 MPa;
    # the registry stores it per boiler as safety_valve_low). Deadband ≈ 2 % of a 1.0-1.25 MPa rating
    # (ISA-18.2 starting value for pressure, DOMAIN.md, check). The high alarm waits 5 s (a single noisy
    # sample is not an alarm; DOMAIN.md quotes 15 s as a starting point — shortened because the
    # over-pressure ramp reaches the valve in about 20 s); the high-high does not wait.
    Rule("boiler.drum_pressure.high", _B, "drum_pressure", H, Limit(param="rated_pressure", factor=0.96),
         Severity.MAJOR, deadband=0.02, on_delay_s=5, message="drum pressure above alarm limit"),
    Rule("boiler.drum_pressure.high_high", _B, "drum_pressure", H, Limit(param="safety_valve_low", factor=1.0),
         Severity.CRITICAL, deadband=0.02, message="drum pressure at the lower safety-valve set pressure"),
    # Drum level: normal ±25-50 mm, alarms at ≈ -50…-75 mm, low-low cut-off -75…-100 mm (DOMAIN.md worked
    # example); level deadband 5 % of the ±100 mm band = 5 mm (ISA-18.2 starting value, check).
    Rule("boiler.drum_level.low", _B, "drum_level", L, Limit(absolute=-50.0), Severity.MAJOR, deadband=5.0,
         on_delay_s=5, message="drum water level low"),
    Rule("boiler.drum_level.low_low", _B, "drum_level", L, Limit(absolute=-75.0), Severity.CRITICAL, deadband=5.0,
         message="drum water level at low-low cut-off", covered_by=("event.low_water_cutoff",)),
    Rule("boiler.drum_level.high", _B, "drum_level", H, Limit(absolute=75.0), Severity.MINOR, deadband=5.0,
         on_delay_s=10, message="drum water level high (carry-over risk)"),
    # A level falling faster than 60 mm/min (the whole -50 mm alarm margin in under a minute) means the
    # feed has failed: warn before the low alarm (DOMAIN.md: low-water interlock must act before the
    # lowest safe level).
    Rule("boiler.drum_level.falling", _B, "drum_level", L, Limit(absolute=60.0), Severity.WARNING,
         kind=K.RATE_OF_CHANGE, window_s=30, off_delay_s=30, message="drum water level falling fast"),
    # Hot-water boilers: outlet kept ≥ 20 °C below saturation (DOMAIN.md, TSG 11); Inner Mongolia
    # networks run 130/70 °C, so 0.96 × the rated outlet temperature is the over-temperature alarm.
    Rule("boiler.outlet_water_temp.high", _B, "outlet_water_temp", H,
         Limit(param="rated_outlet_temp", factor=0.96), Severity.MAJOR, deadband=1.3, on_delay_s=60,
         message="outlet water over temperature"),
    # Flue gas 150-220 °C without economiser (DOMAIN.md worked example); above 250 °C fouling or fire.
    Rule("boiler.flue_gas_temp.high", _B, "flue_gas_temp", H, Limit(absolute=250.0), Severity.MINOR,
         deadband=2.5, on_delay_s=60, message="flue gas temperature high"),
    # Gas-fired O2 2-5 % (DOMAIN.md): below 1 % is incomplete combustion (CO risk).
    Rule("boiler.flue_gas_o2.low", _B, "flue_gas_o2", L, Limit(absolute=1.0), Severity.MAJOR, deadband=0.2,
         on_delay_s=30, message="flue gas O2 low: incomplete combustion"),
    # Stuck transmitters: a live drum pressure always moves by more than 0.1 % of rated in 10 min.
    Rule("boiler.drum_pressure.flatline", _B, "drum_pressure", L, Limit(param="rated_pressure", factor=0.001),
         Severity.MINOR, kind=K.FLATLINE, window_s=600, message="drum pressure transmitter stuck"),
    Rule("boiler.drum_level.flatline", _B, "drum_level", L, Limit(absolute=0.5), Severity.MINOR, kind=K.FLATLINE,
         window_s=600, message="drum level transmitter stuck"),
    # Implausible, not dangerous: a drum pressure above 1.5 × the upper safety valve cannot last, since
    # the valves lift at 1.04/1.06 × (TSG 11); it is a transmitter or scaling fault.
    Rule("boiler.drum_pressure.implausible", _B, "drum_pressure", H, Limit(param="safety_valve_high", factor=1.5),
         Severity.MINOR, kind=K.OUT_OF_RANGE, low=Limit(absolute=0.0), message="drum pressure reading implausible"),
    Rule("boiler.drum_pressure.anomaly", _B, "drum_pressure", H, Limit(absolute=ANOMALY_SCORE), Severity.WARNING,
         kind=K.ANOMALY, off_delay_s=ANOMALY_CLEAR_S, message="drum pressure behaves unusually"),
    Rule("boiler.drum_level.anomaly", _B, "drum_level", H, Limit(absolute=ANOMALY_SCORE), Severity.WARNING,
         kind=K.ANOMALY, off_delay_s=ANOMALY_CLEAR_S, message="drum level behaves unusually"),
    Rule("boiler.steam_temp.anomaly", _B, "steam_temp", H, Limit(absolute=ANOMALY_SCORE), Severity.WARNING,
         kind=K.ANOMALY, off_delay_s=ANOMALY_CLEAR_S, message="steam temperature behaves unusually"),
    Rule("boiler.cross.anomaly", _B, "_cross", H, Limit(absolute=ANOMALY_SCORE), Severity.MINOR,
         kind=K.ANOMALY, off_delay_s=ANOMALY_CLEAR_S,
         message="pressure, level and steam temperature no longer move together"),
    *_common(_B),
)

VESSEL_RULES: tuple[Rule, ...] = (
    # Pressure vessel: 0.8 MPa receiver, high alarm ≈ 0.75 MPa (0.9375 × design), safety valve
    # 0.77-0.80 MPa ≤ design (TSG 21-2016, DOMAIN.md worked example; the registry stores
    # safety_valve_set). Deadband 2 % of 0.8 MPa = 0.016 (ISA-18.2 pressure starting value, check).
    Rule("vessel.pressure.high", _V, "vessel_pressure", H, Limit(param="design_pressure", factor=0.9375),
         Severity.MAJOR, deadband=0.016, on_delay_s=5, message="vessel pressure above alarm limit"),
    Rule("vessel.pressure.high_high", _V, "vessel_pressure", H, Limit(param="safety_valve_set", factor=1.0),
         Severity.CRITICAL, deadband=0.016, message="vessel pressure at the safety-valve set pressure"),
    # A receiver loses pressure at most ≈ 9 % of design a minute with the compressor unloaded (the
    # simulators' air demand; compressor load/unload at 0.6/0.7 MPa of 0.8, DOMAIN.md): a fall faster
    # than 18 %/min is a leak or an open drain.
    Rule("vessel.pressure.falling", _V, "vessel_pressure", L, Limit(param="design_pressure", factor=0.18),
         Severity.MINOR, kind=K.RATE_OF_CHANGE, window_s=60, on_delay_s=20, off_delay_s=60,
         message="vessel pressure falling fast (leak?)"),
    # Compressed air is usually below 60 °C (DOMAIN.md worked example): above it the aftercooler has
    # failed. Deadband 1 % of the 0-100 °C span, 60 s on-delay (ISA-18.2 temperature starting values).
    Rule("vessel.temp.high", _V, "vessel_temp", H, Limit(absolute=60.0), Severity.MINOR, deadband=1.0, on_delay_s=60,
         message="vessel temperature high (aftercooler?)"),
    # Winter condensate freezes in drains (DOMAIN.md): warn at 2 °C.
    Rule("vessel.temp.freeze", _V, "vessel_temp", L, Limit(absolute=2.0), Severity.WARNING, deadband=1.0,
         on_delay_s=300, message="vessel near freezing: drains and condensate"),
    Rule("vessel.pressure.flatline", _V, "vessel_pressure", L, Limit(param="design_pressure", factor=0.001),
         Severity.MINOR, kind=K.FLATLINE, window_s=600, message="vessel pressure transmitter stuck"),
    # Gauges span 1.5-3 × working pressure (TSG 21, DOMAIN.md): a reading past 3 × design is off the gauge.
    Rule("vessel.pressure.implausible", _V, "vessel_pressure", H, Limit(param="design_pressure", factor=3.0),
         Severity.MINOR, kind=K.OUT_OF_RANGE, low=Limit(absolute=0.0), message="vessel pressure reading implausible"),
    Rule("vessel.pressure.anomaly", _V, "vessel_pressure", H, Limit(absolute=ANOMALY_SCORE), Severity.WARNING,
         kind=K.ANOMALY, off_delay_s=ANOMALY_CLEAR_S, message="vessel pressure behaves unusually"),
    Rule("vessel.temp.anomaly", _V, "vessel_temp", H, Limit(absolute=ANOMALY_SCORE), Severity.WARNING,
         kind=K.ANOMALY, off_delay_s=ANOMALY_CLEAR_S, message="vessel temperature behaves unusually"),
    Rule("vessel.cross.anomaly", _V, "_cross", H, Limit(absolute=ANOMALY_SCORE), Severity.MINOR,
         kind=K.ANOMALY, off_delay_s=ANOMALY_CLEAR_S, message="pressure and temperature no longer move together"),
    *_common(_V),
)

ELEVATOR_RULES: tuple[Rule, ...] = (
    # Over-speed: retrofit boxes judge 1.2 × rated speed (DOMAIN.md, check); warn at 1.1. GB 7588 puts
    # the governor trip at ≥ 1.15 × rated.
    Rule("elevator.speed.high", _E, "speed", H, Limit(param="rated_speed", factor=1.1), Severity.MAJOR,
         deadband=0.05, message="car speed above 110 % of rated", covered_by=("elevator.speed.high_high",)),
    Rule("elevator.speed.high_high", _E, "speed", H, Limit(param="rated_speed", factor=1.2), Severity.CRITICAL,
         deadband=0.05, message="car over-speed (120 % of rated)", covered_by=("event.overspeed",)),
    # Overload: a car loaded past 110 % of rated load must not start (GB 7588 overload device).
    Rule("elevator.load.high", _E, "load", H, Limit(absolute=110.0), Severity.MINOR, deadband=5.0, on_delay_s=10,
         message="car overloaded"),
    # A speed past 2 × rated is past any governor trip: the encoder or its scaling is broken.
    Rule("elevator.speed.implausible", _E, "speed", H, Limit(param="rated_speed", factor=2.0), Severity.MINOR,
         kind=K.OUT_OF_RANGE, low=Limit(absolute=0.0), message="car speed reading implausible"),
    Rule("elevator.speed.anomaly", _E, "speed", H, Limit(absolute=ANOMALY_SCORE), Severity.WARNING,
         kind=K.ANOMALY, off_delay_s=ANOMALY_CLEAR_S, message="car speed behaves unusually"),
    *_common(_E),
)

# Non-telemetry rules (checked by the worker's periodic job, `alerts.engine.inspection`): listed so
# overrides and the rule catalogue cover them too.
INSPECTION_RULES: tuple[Rule, ...] = tuple(
    r
    for cat in (_B, _V, _E)
    for r in (
        # TSG 08: periodic inspection before the certificate of inspection expires (DOMAIN.md periods).
        Rule("inspection.overdue", cat, "next_inspection_on", H, Limit(absolute=0.0), Severity.MAJOR,
             kind=K.INSPECTION, message="the equipment must not be used until inspected"),
        # TSG 08: register within 30 days of putting into service; a registration with an end date
        # (a temporary or transferred registration) expires.
        Rule("registration.expired", cat, "registration", H, Limit(absolute=30.0), Severity.MAJOR,
             kind=K.INSPECTION, message="the equipment must be registered to be used"),
    )
)

DEFAULT_RULES: tuple[Rule, ...] = BOILER_RULES + VESSEL_RULES + ELEVATOR_RULES + INSPECTION_RULES
