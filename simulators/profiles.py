"""Physical models of the three categories (pure: state in, readings out, randomness from a seeded RNG).

Each model advances on a simulated clock (``step(t_s, dt_s, faults)`` brings it to the sample
instant ``t_s``) and returns one reading per metric of the contract's catalogue. What the device's
own protections do (a low-water cut-off, a safety valve lifting, a trapped passenger judged by the
elevator's monitoring box) comes out as `DeviceEvent`s, collected with `take_events()`.

Active faults change the physics, so a fault produces the signature an engineer would expect and
the alert engine should catch. Faults are given as their kind names, or as a mapping kind → `Fault`
when they carry a metric or a magnitude (sensor faults, fouling rate, clock skew ...).

Sources of the numbers (DOMAIN.md; "(check)" values are editable defaults): TSG 11-2020 boiler
protections and the safety-valve rule (1.04 p and 1.06 p for 0.8 < p ≤ 5.9 MPa); TSG 21-2016 air
receiver (load/unload ≈ 0.75/0.875 × design); GB/T 24476 elevator status and fault numbering with
the usual retrofit-box judgement times (trapped 20 s, outside the door zone 45 s, over-speed 1.2 ×
rated).
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Collection, Mapping
from typing import Any, NamedTuple

from safewatch.contract import EVENTS_BY_TYPE, METRICS_BY_KEY
from simulators.faults import SENSOR_FAULTS, Fault

Faults = Collection[str] | Mapping[str, Fault]

# Inner Mongolia keeps Beijing time: the load and traffic profiles follow the local clock.
_LOCAL_OFFSET_S = 8 * 3600


class DeviceEvent(NamedTuple):
    """A discrete event the device reports (the equipment code is added by the gateway)."""

    type: str
    ts_ms: int
    active: bool
    details: dict[str, Any]


def local_hour(t_s: float) -> float:
    """Hour of the day (0-24) in Beijing time."""
    return ((t_s + _LOCAL_OFFSET_S) % 86_400) / 3600.0


def saturation_temp(p_gauge_mpa: float) -> float:
    """Saturated-steam temperature (°C) at a gauge pressure, from the steam tables (linear between points)."""
    p = max(0.0, p_gauge_mpa) + 0.101325
    i = min(max(bisect.bisect_left(_SAT_P, p), 1), len(_SAT_P) - 1)
    p0, p1, t0, t1 = _SAT_P[i - 1], _SAT_P[i], _SAT_T[i - 1], _SAT_T[i]
    return t0 + (t1 - t0) * (p - p0) / (p1 - p0)


_SAT_P = (0.101325, 0.2, 0.3, 0.5, 0.7, 1.0, 1.3, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0)
_SAT_T = (100.0, 120.2, 133.5, 151.8, 165.0, 179.9, 191.6, 198.3, 212.4, 224.0, 233.9, 250.4, 263.9, 285.8, 311.0,
          342.2)


def steam_safety_valves(p: float) -> tuple[float, float]:
    """Set pressures of the lower and higher safety valve of a steam boiler of working pressure ``p`` (TSG 11)."""
    if p <= 0.8:
        return p + 0.03, p + 0.05
    if p <= 5.9:
        return 1.04 * p, 1.06 * p
    return 1.05 * p, 1.08 * p


def active_at(faults: Faults, t_s: float) -> Collection[str]:
    """The fault kinds active at ``t_s``: all of a plain collection, or those of a mapping whose window holds t."""
    if not faults or not isinstance(faults, Mapping):
        return faults
    t_ms = t_s * 1000
    return {kind for kind, f in faults.items() if f.start_ms <= t_ms < f.end_ms}


def _with_code(event_type: str, details: dict[str, Any]) -> dict[str, Any]:
    """Event details with the GB/T 24476 fault number of the type, where it has one."""
    code = EVENTS_BY_TYPE[event_type].fault_code
    return {**details, "code": code} if code else details


def _clamp(metric: str, value: float) -> float:
    spec = METRICS_BY_KEY[metric]
    return min(spec.hi, max(spec.lo, value))


class _Model:
    """What every model shares: the clock, the events it raised, and the sensor faults on its readings."""

    metrics: tuple[str, ...] = ()
    default_sensor: str = ""

    def __init__(self, rated: Mapping[str, float], rng: random.Random) -> None:
        self.rated = rated
        self.rng = rng
        self.t: float | None = None  # the model's clock (s); None until the first step
        self.events: list[DeviceEvent] = []
        self.raised: set[str] = set()  # event types currently active
        self.last: dict[str, float] = {}
        self._sensor_onset: dict[str, tuple[float, float]] = {}  # kind → (onset time, value at onset)
        self._sensor_rng = random.Random(rng.getrandbits(32))  # so a sensor fault leaves the process untouched

    # -- the shared step --------------------------------------------------------------------
    def step(self, t_s: float, dt_s: float, faults: Faults) -> dict[str, float]:
        """Advance to ``t_s`` (the previous step, or ``t_s - dt_s`` at first) and return the readings."""
        if self.t is None:
            self.t = t_s - dt_s
        if t_s > self.t:
            self._advance(t_s, faults)
            self.t = t_s
        true_values = self._read(self.t)
        self.last = self._apply_sensor_faults(true_values, self.t, active_at(faults, self.t), faults)
        return self.last

    def take_events(self) -> list[DeviceEvent]:
        """The events raised since the last call."""
        out, self.events = self.events, []
        return out

    def scale(self, metric: str) -> float:
        """A nominal magnitude of ``metric`` (sizes sensor drift and spikes)."""
        spec = METRICS_BY_KEY[metric]
        return 0.05 * (spec.hi - spec.lo)

    # -- for subclasses -----------------------------------------------------------------------
    def _advance(self, t_s: float, faults: Faults) -> None:
        raise NotImplementedError

    def _read(self, t_s: float) -> dict[str, float]:
        raise NotImplementedError

    def _raise(self, event_type: str, t_s: float, **details: Any) -> None:
        if event_type in self.raised:
            return
        self.raised.add(event_type)
        self.events.append(DeviceEvent(event_type, int(t_s * 1000), True, _with_code(event_type, details)))

    def _clear(self, event_type: str, t_s: float, **details: Any) -> None:
        if event_type not in self.raised:
            return
        self.raised.discard(event_type)
        self.events.append(DeviceEvent(event_type, int(t_s * 1000), False, _with_code(event_type, details)))

    def _apply_sensor_faults(self, values: dict[str, float], t_s: float, active: Collection[str],
                             faults: Faults) -> dict[str, float]:
        for kind in SENSOR_FAULTS:
            if kind not in active:
                self._sensor_onset.pop(kind, None)
                continue
            fault = faults.get(kind) if isinstance(faults, Mapping) else None
            metric = (fault.metric if fault is not None and fault.metric else None) or self.default_sensor
            if metric not in values:
                continue
            magnitude = fault.magnitude if fault is not None and fault.magnitude is not None else None
            onset_t, onset_value = self._sensor_onset.setdefault(kind, (t_s, values[metric]))
            if kind == "sensor_stuck":
                values[metric] = onset_value
            elif kind == "sensor_drift":  # magnitude: units per hour
                rate = magnitude if magnitude is not None else self.scale(metric)
                values[metric] = _clamp(metric, values[metric] + rate * (t_s - onset_t) / 3600.0)
            elif kind == "sensor_spikes" and self._sensor_rng.random() < 0.3:  # magnitude: spike height
                height = magnitude if magnitude is not None else 4 * self.scale(metric)
                values[metric] = _clamp(metric, values[metric] + self._sensor_rng.choice((-1.0, 1.0)) * height)
        return values


class _SubsteppedModel(_Model):
    """A model integrated in substeps of at most ``H`` seconds, each seeing the faults active at its end."""

    H: float  # s: the longest integration step, stated by each model

    def _advance(self, t_s: float, faults: Faults) -> None:
        assert self.t is not None
        t = self.t
        while t < t_s - 1e-9:
            h = min(self.H, t_s - t)
            t += h
            self._substep(t, h, active_at(faults, t), faults)

    def _substep(self, t: float, h: float, active: Collection[str], faults: Faults) -> None:
        raise NotImplementedError


class BoilerModel(_SubsteppedModel):
    """A steam boiler with its pressure and level controllers and its protections.

    Pressure: dp/dt = K · P · (heat in − steam out), heat in = firing × (1 − fouling loss), in units of
    the rated evaporation; the burner (max 1.15 × rated) is modulated by a pressure controller at
    0.85 P. Level: a modulating feed valve holds the normal water line; without feed the level falls
    by about 1.5 mm/s at full load. Protections: over-pressure alarm 0.96 P (the alert rules'),
    over-pressure interlock halfway between P and the lower safety valve (cuts the burner, manual
    reset), two safety valves at the TSG 11 set pressures (blow-down 4 %), low-water cut-off at
    −100 mm (cuts the burner, latched until the level is back and an operator resets it), high water
    alarm at +75 mm, flame-failure cut-off.
    """

    metrics = ("drum_pressure", "drum_level", "steam_temp", "steam_flow", "feedwater_temp", "feedwater_pressure",
               "furnace_temp", "flue_gas_temp", "flue_gas_o2", "burner_on")
    default_sensor = "drum_pressure"
    K = 0.01  # 1/s: pressure change per unit of heat imbalance, as a share of rated pressure
    LEVEL_RATE = 1.5  # mm/s of level change per unit of flow imbalance
    H = 2.0  # s: the longest integration step

    def __init__(self, rated: Mapping[str, float], rng: random.Random) -> None:
        super().__init__(rated, rng)
        self.P = float(rated.get("rated_pressure", 1.25))
        low, high = steam_safety_valves(self.P)
        self.sv = (float(rated.get("safety_valve_low", low)), float(rated.get("safety_valve_high", high)))
        self.setpoint = 0.85 * self.P
        self.interlock_at = self.P + 0.5 * (self.sv[0] - self.P)
        self.lwco_at = float(rated.get("low_water_cutoff", -100.0))
        self.evaporation = float(rated.get("rated_evaporation", 4.0))
        self.p = self.setpoint * (1 + rng.uniform(-0.03, 0.03))
        self.level = rng.uniform(-10, 10)
        self.firing = 0.6
        self.burner = True
        self.valve_open = [False, False]
        self.interlock = False  # over-pressure interlock tripped (manual reset)
        self.lwco = False  # low-water cut-off tripped (manual reset)
        self.flame_lockout = False
        self.reset_due: float | None = None  # when the operator resets a tripped protection
        self.feed = 0.6
        self.flue = 190.0
        self.furnace = 1000.0
        self.fouling = 0.0  # °C added to the flue gas by soot on the heating surfaces
        self.load = 0.6
        self._load_noise = 0.0

    def scale(self, metric: str) -> float:
        return {"drum_pressure": 0.05 * self.P, "drum_level": 20.0, "flue_gas_temp": 10.0,
                "steam_temp": 5.0}.get(metric, super().scale(metric))

    def _demand(self, t_s: float, h: float) -> float:
        hour = local_hour(t_s)
        # Heating/process demand: low at night, morning ramp, evening shoulder (share of rated evaporation).
        base = 0.45 + 0.2 * math.exp(-((hour - 9.0) / 2.5) ** 2) + 0.15 * math.exp(-((hour - 19.0) / 3.0) ** 2)
        self._load_noise += -self._load_noise * h / 300.0 + self.rng.gauss(0, 0.01) * math.sqrt(h)
        return min(0.8, max(0.35, base + self._load_noise))

    def _substep(self, t: float, h: float, active: Collection[str], faults: Faults) -> None:
        P = self.P
        self.load = self._demand(t, h)
        stuck = "pressure_controller_stuck" in active or "overpressure" in active
        bypassed = "interlock_bypassed" in active or "overpressure" in active
        # Protections first: they act on the state reached in the previous substep.
        if not bypassed and self.p >= self.interlock_at and not self.interlock:
            self.interlock = True
            self._raise("overpressure_interlock", t, pressure=round(self.p, 3),
                        set_pressure=round(self.interlock_at, 3))
        if self.level <= self.lwco_at and not self.lwco:
            self.lwco = True
            self._raise("low_water_cutoff", t, level=round(self.level, 1), set_level=self.lwco_at)
        if self.level >= 75.0:
            self._raise("high_water_level", t, level=round(self.level, 1))
        elif self.level < 50.0:
            self._clear("high_water_level", t, level=round(self.level, 1))
        if "flame_failure" in active and not self.flame_lockout:
            self.flame_lockout = True
            self._raise("flame_failure", t)
        # An operator resets a tripped protection a few minutes after its cause has gone.
        tripped = self.interlock or self.lwco or self.flame_lockout
        if tripped:
            # (A stuck controller is not the interlock's cause: after a reset it fires again and trips again.)
            cause_gone = ((not self.interlock or self.p < self.setpoint)
                          and (not self.lwco or (self.level > -25.0 and "feed_pump_failure" not in active))
                          and (not self.flame_lockout or "flame_failure" not in active))
            if cause_gone and self.reset_due is None:
                self.reset_due = t + 120.0
            elif not cause_gone:
                self.reset_due = None
            if self.reset_due is not None and t >= self.reset_due:
                for event, flag in (("overpressure_interlock", "interlock"), ("low_water_cutoff", "lwco"),
                                    ("flame_failure", "flame_lockout")):
                    if getattr(self, flag):
                        setattr(self, flag, False)
                        self._clear(event, t, reset="operator")
                self.reset_due = None
        blocked = self.interlock or self.lwco or self.flame_lockout
        # Pressure controller: a modulating burner around the set point (proportional + load feed-forward).
        if blocked:
            target = 0.0
        elif stuck:
            target = 1.15
        else:
            target = min(1.15, max(0.3, self.load + 6.0 * (self.setpoint - self.p) / P))
        self.firing += (target - self.firing) * min(1.0, h / 10.0)  # burner modulation motor
        self.burner = not blocked
        loss = min(0.3, self.fouling / 300.0)  # soot insulates: less heat into the water
        # Steam leaves at the demanded rate while pressure lasts (consumers' valves are wide open below
        # 0.7 P, so flow then falls with pressure); safety valves add their discharge.
        steam = self.load * min(1.0, self.p / (0.7 * P))
        for i, (set_p, capacity) in enumerate(zip(self.sv, (0.7, 0.7), strict=True)):
            if "safety_valve_failed" in active:
                opened = False
            elif not self.valve_open[i] and self.p >= set_p:
                opened = True
                self._raise("safety_valve_lift", t, pressure=round(self.p, 3), set_pressure=round(set_p, 3),
                            valve=i + 1)
            elif self.valve_open[i] and self.p <= 0.96 * set_p:  # reseat after a 4 % blow-down
                opened = False
                if not any(self.valve_open[j] for j in range(2) if j != i):
                    self._clear("safety_valve_lift", t, pressure=round(self.p, 3), valve=i + 1)
            else:
                opened = self.valve_open[i]
            self.valve_open[i] = opened
            if opened:
                steam += capacity
        self.p = max(0.0, self.p + self.K * P * (self.firing * (1 - loss) - steam) * h)
        # Level: feed valve follows load and level error; swell/shrink ignored at this resolution.
        if "feed_pump_failure" in active:
            self.feed = 0.0
        elif "feed_valve_stuck_open" in active:
            self.feed = 1.5
        else:
            self.feed = min(1.5, max(0.0, steam + (0.0 - self.level) / 40.0))
        self.level = min(400.0, max(-400.0, self.level + self.LEVEL_RATE * (self.feed - steam) * h))
        # Flue gas follows firing with a minute's lag; fouling creeps while the fault lasts, cleaning removes it.
        if "fouling" in active:
            fault = faults.get("fouling") if isinstance(faults, Mapping) else None
            rate = fault.magnitude if fault is not None and fault.magnitude is not None else 20.0  # °C per hour
            self.fouling += rate * h / 3600.0
        else:
            self.fouling = max(0.0, self.fouling - 100.0 * h / 3600.0)
        firing_now = self.firing if self.burner else 0.0
        flue_target = (150.0 + 60.0 * firing_now if self.burner else saturation_temp(self.p) - 40.0) + self.fouling
        self.flue += (flue_target - self.flue) * min(1.0, h / 60.0)
        furnace_target = 850.0 + 300.0 * firing_now if self.burner else saturation_temp(self.p) + 20.0
        self.furnace += (furnace_target - self.furnace) * min(1.0, h / 30.0)

    def _read(self, t_s: float) -> dict[str, float]:
        g = self.rng.gauss
        P = self.P
        pump_running = self.feed > 0.0
        o2 = 3.0 + 2.5 * (1.0 - min(1.0, self.firing)) if self.burner else 20.9  # more excess air at low fire
        return {
            "drum_pressure": round(_clamp("drum_pressure", self.p + g(0, 0.002 * P)), 4),
            "drum_level": round(_clamp("drum_level", self.level + g(0, 2.0)), 1),
            "steam_temp": round(saturation_temp(self.p) + g(0, 0.3), 2),
            "steam_flow": round(max(0.0, self.load * self.evaporation * min(1.0, self.p / (0.7 * P))
                                    + g(0, 0.01 * self.evaporation)), 3),
            "feedwater_temp": round(104.0 + g(0, 0.3), 2),  # from a deaerator at ≈ 0.02 MPa
            "feedwater_pressure": round(max(0.0, (self.p + 0.3 * P if pump_running else 0.05) + g(0, 0.003 * P)), 4),
            "furnace_temp": round(_clamp("furnace_temp", self.furnace + g(0, 3.0)), 1),
            "flue_gas_temp": round(_clamp("flue_gas_temp", self.flue + g(0, 1.0)), 1),
            "flue_gas_o2": round(_clamp("flue_gas_o2", o2 + g(0, 0.15)), 2),
            "burner_on": 1.0 if self.burner else 0.0,
        }


class HotWaterBoilerModel(_SubsteppedModel):
    """A pressurised hot-water heating boiler (承压热水锅炉, variety 1200), e.g. 1.25 MPa, 130/70 °C.

    The supply temperature follows a heating curve on the outdoor temperature (Inner Mongolia: about
    −15 °C in January, down to −30 °C on cold mornings); a modulating burner holds it. The return comes
    back cooler by what the network took. Water pressure is held by the pressurisation (make-up) system
    at 0.6 P plus thermal expansion. Protections: an over-temperature limiter that cuts the burner 20 °C
    below saturation or at 140 °C (DOMAIN.md), and safety valves at 1.10 P (≥ P + 0.07) and 1.12 P
    (≥ P + 0.10) for hot-water boilers.
    """

    metrics = ("drum_pressure", "outlet_water_temp", "return_water_temp", "furnace_temp", "flue_gas_temp",
               "flue_gas_o2", "burner_on")
    default_sensor = "outlet_water_temp"
    H = 2.0

    def __init__(self, rated: Mapping[str, float], rng: random.Random) -> None:
        super().__init__(rated, rng)
        self.P = float(rated.get("rated_pressure", 1.25))
        self.sv = (max(1.10 * self.P, self.P + 0.07), max(1.12 * self.P, self.P + 0.10))
        self.limit = min(140.0, saturation_temp(0.6 * self.P) - 20.0)
        self.supply = 85.0
        self.ret = 55.0
        self.firing = 0.5
        self.burner = True
        self.cutoff = False
        self.flame_lockout = False
        self.valve_open = False
        self.flow = 1.0
        self.p = 0.6 * self.P
        self.flue = 170.0
        self.furnace = 950.0
        self.fouling = 0.0
        self._weather = rng.gauss(0, 3)

    def scale(self, metric: str) -> float:
        return {"drum_pressure": 0.05 * self.P, "outlet_water_temp": 5.0, "return_water_temp": 5.0,
                "flue_gas_temp": 10.0}.get(metric, super().scale(metric))

    def outdoor(self, t_s: float) -> float:
        """Outdoor temperature (°C): the season, the day (coldest at dawn) and the weather."""
        day = (t_s / 86_400.0) % 365.25
        season = 5.0 - 20.0 * math.cos(2 * math.pi * (day - 15.0) / 365.25)
        daily = -6.0 * math.cos(2 * math.pi * (local_hour(t_s) - 4.0) / 24.0)
        return season + daily + self._weather

    def _substep(self, t: float, h: float, active: Collection[str], faults: Faults) -> None:
        self._weather += -self._weather * h / 86_400.0 + self.rng.gauss(0, 0.05) * math.sqrt(h)
        out = self.outdoor(t)
        demand = min(1.0, max(0.05, (18.0 - out) / 43.0))  # share of design heat (−25 °C design day)
        setpoint = min(130.0, max(60.0, 50.0 + 1.9 * (18.0 - out)))
        self.flow = 0.05 if "circulation_pump_failure" in active else 1.0  # natural circulation only
        if self.supply >= self.limit and not self.cutoff:
            self.cutoff = True  # the over-temperature limiter cuts the burner
            self._raise("over_temperature_cutoff", t, supply=round(self.supply, 1), limit=self.limit)
        elif self.cutoff and self.supply < self.limit - 15.0 and "circulation_pump_failure" not in active:
            self.cutoff = False
            self._clear("over_temperature_cutoff", t, supply=round(self.supply, 1))
        if "flame_failure" in active and not self.flame_lockout:
            self.flame_lockout = True
            self._raise("flame_failure", t)
        elif self.flame_lockout and "flame_failure" not in active:
            self.flame_lockout = False
            self._clear("flame_failure", t, reset="operator")
        self.burner = not (self.cutoff or self.flame_lockout)
        target = 0.0 if not self.burner else min(1.1, max(0.2, demand + (setpoint - self.supply) / 15.0))
        self.firing += (target - self.firing) * min(1.0, h / 10.0)
        loss = min(0.3, self.fouling / 300.0)
        # Boiler water: heated by the burner, cooled by the flow to the network (design ΔT 60 K at full flow).
        heat_in = self.firing * (1 - loss)
        carried = self.flow * (self.supply - self.ret) / 60.0
        self.supply += (heat_in - carried) * 60.0 * h / 120.0
        network_return = self.supply - 60.0 * demand  # what the radiators give back
        self.ret += (network_return - self.ret) * min(1.0, h * self.flow / 600.0)
        # Pressure: pressurisation at 0.6 P plus expansion with the mean water temperature.
        stuck = "overpressure" in active  # the make-up pump's pressure switch fails closed
        p_target = (1.2 * self.P if stuck else 0.6 * self.P) + 0.002 * self.P * ((self.supply + self.ret) / 2 - 80.0)
        self.p += (p_target - self.p) * min(1.0, h / 60.0)
        if "safety_valve_failed" not in active:
            if not self.valve_open and self.p >= self.sv[0]:
                self.valve_open = True
                self._raise("safety_valve_lift", t, pressure=round(self.p, 3), set_pressure=round(self.sv[0], 3),
                            valve=1)
            elif self.valve_open and self.p <= 0.95 * self.sv[0]:
                self.valve_open = False
                self._clear("safety_valve_lift", t, pressure=round(self.p, 3), valve=1)
            if self.valve_open:
                self.p -= 0.05 * self.P * h  # the valve discharges water and the pressure falls at once
        if "fouling" in active:
            fault = faults.get("fouling") if isinstance(faults, Mapping) else None
            self.fouling += (fault.magnitude if fault is not None and fault.magnitude is not None else 20.0) * h / 3600
        else:
            self.fouling = max(0.0, self.fouling - 100.0 * h / 3600.0)
        firing_now = self.firing if self.burner else 0.0
        flue_target = (130.0 + 60.0 * firing_now if self.burner else self.supply - 10.0) + self.fouling
        self.flue += (flue_target - self.flue) * min(1.0, h / 60.0)
        self.furnace += ((850.0 + 300.0 * firing_now if self.burner else self.supply + 20.0) - self.furnace) * min(
            1.0, h / 30.0)

    def _read(self, t_s: float) -> dict[str, float]:
        g = self.rng.gauss
        o2 = 3.0 + 2.5 * (1.0 - min(1.0, self.firing)) if self.burner else 20.9
        return {
            "drum_pressure": round(_clamp("drum_pressure", self.p + g(0, 0.002 * self.P)), 4),
            "outlet_water_temp": round(_clamp("outlet_water_temp", self.supply + g(0, 0.2)), 2),
            "return_water_temp": round(_clamp("return_water_temp", self.ret + g(0, 0.2)), 2),
            "furnace_temp": round(_clamp("furnace_temp", self.furnace + g(0, 3.0)), 1),
            "flue_gas_temp": round(_clamp("flue_gas_temp", self.flue + g(0, 1.0)), 1),
            "flue_gas_o2": round(_clamp("flue_gas_o2", o2 + g(0, 0.15)), 2),
            "burner_on": 1.0 if self.burner else 0.0,
        }


class VesselModel(_SubsteppedModel):
    """A compressed-air receiver fed by a load/unload compressor, drawn by a plant's demand.

    dp/dt = p_atm (Q_in − Q_out) / V: the compressor delivers ``3 V`` m³/min of free air when loaded
    (≈ 40 s load / unload cycles at half demand). Loads at 0.75 × design, unloads at 0.875 × design;
    the safety valve lifts at its set pressure (≤ design, TSG 21) and can discharge the compressor's
    full delivery; air temperature follows the compressor's duty behind the aftercooler.
    """

    metrics = ("vessel_pressure", "vessel_temp", "compressor_on")
    default_sensor = "vessel_pressure"
    H = 2.0

    def __init__(self, rated: Mapping[str, float], rng: random.Random) -> None:
        super().__init__(rated, rng)
        self.D = float(rated.get("design_pressure", 0.8))
        self.sv = float(rated.get("safety_valve_set", 0.97 * self.D))
        self.volume = float(rated.get("volume", 1.0))
        self.capacity = 3.0 * self.volume / 60.0  # m³ of free air per second
        self.load_at, self.unload_at = 0.75 * self.D, 0.875 * self.D
        self.p = rng.uniform(self.load_at, self.unload_at)
        self.loaded = rng.random() < 0.5
        self.valve_open = False
        self.ambient = 20.0
        self.temp = 30.0
        self.demand = 0.5
        self._noise = 0.0

    def scale(self, metric: str) -> float:
        return {"vessel_pressure": 0.05 * self.D, "vessel_temp": 5.0}.get(metric, super().scale(metric))

    def _substep(self, t: float, h: float, active: Collection[str], faults: Faults) -> None:
        hour = local_hour(t)
        shift = 0.55 if 8.0 <= hour < 18.0 else (0.35 if 6.0 <= hour < 22.0 else 0.12)
        self._noise += -self._noise * h / 120.0 + self.rng.gauss(0, 0.02) * math.sqrt(h)
        self.demand = min(0.9, max(0.02, shift + self._noise))
        # The pressure switch: a failed unloader (the over-pressure fault) never unloads.
        if "overpressure" not in active and self.p >= self.unload_at:
            self.loaded = False
        elif self.p <= self.load_at:
            self.loaded = True
        out = self.demand * min(1.0, self.p / self.load_at)
        if "leak" in active:
            fault = faults.get("leak") if isinstance(faults, Mapping) else None
            share = fault.magnitude if fault is not None and fault.magnitude is not None else 0.3
            out += share * self.p / self.D  # a leak grows with pressure
        if "safety_valve_failed" not in active:
            if not self.valve_open and self.p >= self.sv:
                self.valve_open = True
                self._raise("vessel_safety_valve_lift", t, pressure=round(self.p, 3), set_pressure=self.sv)
            elif self.valve_open and self.p <= 0.93 * self.sv:
                self.valve_open = False
                self._clear("vessel_safety_valve_lift", t, pressure=round(self.p, 3))
        else:
            self.valve_open = False
        if self.valve_open:
            out += 1.5
        # A compressor cannot push past its own maximum discharge pressure (its internal relief).
        inflow = 1.0 if self.loaded and self.p < 1.3 * self.D else 0.0
        self.p = max(0.0, self.p + 0.101325 * self.capacity * (inflow - out) * h / self.volume)
        if self.p > self.D:
            self._raise("vessel_overpressure", t, pressure=round(self.p, 3), design_pressure=self.D)
        elif self.p < 0.95 * self.D:
            self._clear("vessel_overpressure", t, pressure=round(self.p, 3))
        inlet = 45.0 if self.loaded else self.ambient
        if "temperature_excursion" in active:  # the aftercooler failed: discharge air at ≈ 100 °C
            inlet = 100.0 if self.loaded else 70.0
        self.temp += (inlet - self.temp) * min(1.0, h / 300.0)

    def _read(self, t_s: float) -> dict[str, float]:
        g = self.rng.gauss
        return {"vessel_pressure": round(_clamp("vessel_pressure", self.p + g(0, 0.002 * self.D)), 4),
                "vessel_temp": round(_clamp("vessel_temp", self.temp + g(0, 0.2)), 2),
                "compressor_on": 1.0 if self.loaded else 0.0}


class _Run(NamedTuple):
    """One run of the car: from/to positions (m), start time, speed limit, when it is cut short and why."""

    frm: float
    to: float
    start: float
    vmax: float
    cut: float  # seconds after start when the car is stopped short (inf: it arrives)
    reason: str | None  # the fault that cuts or diverts the run


class ElevatorModel(_Model):
    """A traction elevator: calls, trips with a trapezoidal speed profile, doors, passengers and load.

    A phase machine (idle → doors opening → open → closing → run → ...) advanced from transition to
    transition, so a 10 s sample costs a few transitions. Runs accelerate at 0.8 m/s² to the rated
    speed over 3 m storeys; the door zone is ±0.2 m of a landing. The monitoring box judges a trapped
    passenger after 20 s, a stop outside the door zone after 45 s, an overshoot after 20 s and
    over-speed at 1.2 × rated; every event carries its GB/T 24476 fault number as ``details.code``.
    Maintenance visits (inspection mode, an hour twice a month, TSG T5002) happen without any fault.
    A fault holds the car until it ends: then a technician relevels it, releases anyone inside and
    returns it to service.
    """

    metrics = ("service_mode", "car_moving", "direction", "door_zone", "floor", "door_locked", "passenger_present",
               "mains_power", "speed", "load", "run_hours", "trips", "door_cycles")
    default_sensor = "load"
    ACCEL = 0.8
    ZONE = 0.2
    DOOR_OPEN_S, DOOR_CLOSE_S = 2.5, 3.0
    STOP_FAULTS = ("passenger_trapped", "safety_circuit_open")  # stop the car wherever it is
    RUN_FAULTS = ("overshoot_top", "overshoot_bottom", "overspeed", "stopped_outside_door_zone")  # act on a run

    def __init__(self, rated: Mapping[str, float], rng: random.Random) -> None:
        super().__init__(rated, rng)
        self.v = float(rated.get("rated_speed", 1.5))
        self.floors = max(2, int(rated.get("floors", 10.0)))
        self.storey = float(rated.get("floor_height", 3.0))
        self.rated_load = float(rated.get("rated_load", 1000.0))
        self.pos = self.storey * rng.randrange(self.floors)
        self.phase = "new"
        self.phase_end = -math.inf
        self.run: _Run | None = None
        self.passengers = 0
        self.door_open = False
        self.mode = 1.0
        self.power = True
        self.trips = float(rng.randint(10_000, 400_000))
        self.run_hours = round(self.trips * 25 / 3600, 1)
        self.door_cycles = 2 * self.trips
        self.maintenance_offset = rng.uniform(0, 15 * 86_400)
        self.armed: set[str] = set()  # faults waiting for the moment they can act
        self.acting: set[str] = set()  # faults that have acted and hold the car
        self.seen: set[str] = set()  # faults active at the previous step
        self.timers: list[tuple[float, str]] = []  # (due, event) judged by the monitoring box

    def scale(self, metric: str) -> float:
        return {"load": 10.0, "speed": 0.1 * self.v, "floor": 1.0}.get(metric, super().scale(metric))

    # -- the speed profile ----------------------------------------------------------------------
    def _profile(self, distance: float, vmax: float) -> tuple[float, float, float]:
        """(peak speed, acceleration time, total time) of a run of ``distance`` m."""
        if distance >= vmax * vmax / self.ACCEL:
            return vmax, vmax / self.ACCEL, distance / vmax + vmax / self.ACCEL
        peak = math.sqrt(self.ACCEL * distance)
        return peak, peak / self.ACCEL, 2 * peak / self.ACCEL

    def _run_state(self, run: _Run, t: float) -> tuple[float, float]:
        """(position, speed) of the car on ``run`` at time ``t``."""
        d = abs(run.to - run.frm)
        peak, ta, total = self._profile(d, run.vmax)
        tau = min(max(0.0, t - run.start), total, run.cut)
        if tau < ta:
            s, v = 0.5 * self.ACCEL * tau * tau, self.ACCEL * tau
        elif tau < total - ta:
            s, v = 0.5 * self.ACCEL * ta * ta + peak * (tau - ta), peak
        else:
            rest = total - tau
            s, v = d - 0.5 * self.ACCEL * rest * rest, self.ACCEL * rest
        if tau >= run.cut:
            v = 0.0  # an emergency stop: brake or safety gear, within centimetres at this resolution
        return run.frm + math.copysign(s, run.to - run.frm), v

    def _start_run(self, t: float, to: float, *, vmax: float | None = None, cut: float = math.inf,
                   reason: str | None = None) -> None:
        speed = vmax or self.v
        _, _, total = self._profile(abs(to - self.pos), speed)
        self.run = _Run(self.pos, to, t, speed, cut, reason)
        self.phase, self.phase_end = "run", t + min(total, cut)
        self.door_open = False
        self.trips += 1

    def _landing(self, pos: float) -> int:
        return min(self.floors - 1, max(0, round(pos / self.storey)))

    def _in_zone(self, pos: float) -> bool:
        return abs(pos - self._landing(pos) * self.storey) <= self.ZONE

    def _destination(self) -> float:
        here = self._landing(self.pos)
        there = self.rng.randrange(self.floors - 1)
        return self.storey * (there if there < here else there + 1)

    # -- the phase machine --------------------------------------------------------------------
    def _advance(self, t_s: float, faults: Faults) -> None:
        # The car runs on to the sample instant as it was; faults that began or ended meanwhile act then.
        assert self.t is not None
        if self.phase == "new":
            self._idle(self.t)
        while self.phase_end <= t_s:
            self._fire_timers(self.phase_end)
            self._next_phase(self.phase_end)
        self._fire_timers(t_s)
        active = {k for k in active_at(faults, t_s) if k not in SENSOR_FAULTS}
        self.armed |= active - self.seen
        for kind in self.seen - active:
            self.armed.discard(kind)
            if kind in self.acting:
                self.acting.discard(kind)
                if not self.acting:
                    self._recover(t_s)
        self.seen = active
        self._stop_now(t_s)
        self._fire_timers(t_s)

    def _fire_timers(self, t: float) -> None:
        while self.timers and self.timers[0][0] <= t:
            due, event = self.timers.pop(0)
            if event == "passenger_trapped" and self.passengers == 0:
                continue
            if event == "stopped_outside_door_zone" and self._in_zone(self.pos):
                continue
            self._raise(event, due, floor=self._landing(self.pos) + 1, position_m=round(self.pos, 2))

    def _halt(self, t: float, kind: str, *events: tuple[float, str]) -> None:
        """The car stops and stays until ``kind`` is repaired; the monitoring box starts its timers."""
        if self.phase == "run" and self.run is not None:
            self.pos, _ = self._run_state(self.run, t)
            self.run_hours += (t - self.run.start) / 3600.0
        self.run = None
        self.armed.discard(kind)
        self.acting.add(kind)
        self.phase, self.phase_end = "halted", math.inf
        self.timers = sorted([(t + 20.0, "passenger_trapped"), (t + 45.0, "stopped_outside_door_zone"), *events])

    def _recover(self, t: float) -> None:
        """A technician repairs the fault: relevel to the nearest landing, open, let people out, resume."""
        for event in ("passenger_trapped", "stopped_outside_door_zone", "safety_circuit_open", "overshoot_top",
                      "overshoot_bottom", "unintended_car_movement", "overspeed", "door_open_fault",
                      "door_close_fault"):
            self._clear(event, t, floor=self._landing(self.pos) + 1)
        self.timers = []
        self.power, self.mode = True, 1.0
        self.pos = self._landing(self.pos) * self.storey
        self.passengers, self.run = 0, None
        self.door_open, self.door_cycles = True, self.door_cycles + 1
        self.phase, self.phase_end = "open", t + 5.0

    def _stop_now(self, t: float) -> None:
        """Faults that act at once, whatever the car is doing."""
        if self.phase == "halted":
            return
        if "power_failure" in self.armed:
            self.power, self.mode = False, 0.0
            self._halt(t, "power_failure")
            return
        for kind in self.STOP_FAULTS:
            if kind not in self.armed:
                continue
            if self.phase == "run":
                if kind == "passenger_trapped":
                    self.passengers = max(1, self.passengers)
                self._halt(t, kind, *([(t, "safety_circuit_open")] if kind == "safety_circuit_open" else []))
            elif self.phase in ("idle", "inspection"):
                # Someone boards; the car stops between floors on the way.
                self.passengers, self.mode = max(1, self.passengers), 1.0
                dest = self._destination()
                _, _, total = self._profile(abs(dest - self.pos), self.v)
                self._start_run(t, dest, cut=total * self.rng.uniform(0.3, 0.7), reason=kind)
            return  # otherwise the doors are cycling: it acts on the next run

    def _idle(self, t: float) -> None:
        hour = local_hour(t)
        peak = 7.0 <= hour < 9.0 or 11.5 <= hour < 13.5 or 17.0 <= hour < 19.0
        mean = 25.0 if peak else (90.0 if 6.0 <= hour < 23.0 else 900.0)
        self.phase, self.phase_end = "idle", t + self.rng.expovariate(1.0 / mean)

    def _in_maintenance(self, t: float) -> bool:
        return (t + self.maintenance_offset) % (15 * 86_400) < 3600.0

    def _next_phase(self, t: float) -> None:
        phase = self.phase
        if phase == "idle":
            if self._in_maintenance(t):
                self.mode = 2.0  # inspection: a technician on the car roof, no passengers
                self.phase, self.phase_end = "inspection", t + 600.0
                return
            self.door_open, self.door_cycles = True, self.door_cycles + 1
            self.passengers = self.rng.randint(1, 8 if 7.0 <= local_hour(t) < 19.0 else 3)
            self.phase, self.phase_end = "opening", t + self.DOOR_OPEN_S
        elif phase == "inspection":
            if self._in_maintenance(t):
                self.phase_end = t + 600.0
            else:
                self.mode = 1.0
                self._idle(t)
        elif phase == "opening":
            self.phase, self.phase_end = "open", t + self.rng.uniform(3.0, 8.0)
            if "unintended_car_movement" in self.armed:  # the brake fails with the doors open
                self._raise("unintended_car_movement", t + 1.0, floor=self._landing(self.pos) + 1)
                drift = self.rng.choice((-1.0, 1.0)) * self.rng.uniform(0.5, 1.1)  # UCMP stops it within ≈ 1 m
                self.pos = min(max(self.pos + drift, -0.5), (self.floors - 1) * self.storey + 0.5)
                self.mode = 0.0
                self._halt(t + 3.0, "unintended_car_movement")
        elif phase == "open":
            if "door_close_fault" in self.armed:  # closing fails three times: the car stays, doors open
                self.mode = 0.0
                self._halt(t, "door_close_fault", (t + 15.0, "door_close_fault"))
                self.timers = [x for x in self.timers if x[1] == "door_close_fault"]
                return
            self.phase, self.phase_end = "closing", t + self.DOOR_CLOSE_S
        elif phase == "closing":
            self.door_open = False
            if self.passengers == 0:
                self._idle(t)
            else:
                self._plan_run(t)
        elif phase == "run":
            self._end_run(t)

    def _plan_run(self, t: float) -> None:
        top = (self.floors - 1) * self.storey
        for kind in ("overshoot_top", "overshoot_bottom"):
            if kind in self.armed:  # the car does not stop at the terminal landing: it runs onto the final limit
                beyond = self.rng.uniform(0.5, 0.9)
                self._start_run(t, top + beyond if kind == "overshoot_top" else -beyond, reason=kind)
                return
        if "overspeed" in self.armed:  # a runaway (traction or drive failure); the governor trips the safety gear
            to = 0.0 if self.pos > 2 * self.storey else top
            self._start_run(t, to, vmax=1.3 * self.v, cut=1.25 * self.v / self.ACCEL, reason="overspeed")
            return
        if "stopped_outside_door_zone" in self.armed:  # a levelling fault, answering a landing call empty
            dest = self._destination()
            self.passengers = 0
            self._start_run(t, dest - math.copysign(self.rng.uniform(0.35, 0.8), dest - self.pos),
                            reason="stopped_outside_door_zone")
            return
        for kind in self.STOP_FAULTS:
            if kind in self.armed:
                dest = self._destination()
                _, _, total = self._profile(abs(dest - self.pos), self.v)
                self._start_run(t, dest, cut=total * self.rng.uniform(0.3, 0.7), reason=kind)
                return
        self._start_run(t, self._destination())

    def _end_run(self, t: float) -> None:
        run = self.run
        assert run is not None
        reason = run.reason
        if reason == "overspeed":
            self._raise("overspeed", run.start + 1.2 * self.v / self.ACCEL, speed=round(1.2 * self.v, 2),
                        rated_speed=self.v)
            self._halt(t, reason, (t, "safety_circuit_open"))  # the governor and safety-gear switches open
            return
        if reason in ("overshoot_top", "overshoot_bottom"):
            self._halt(t, reason, (t + 20.0, reason))
            return
        if reason == "stopped_outside_door_zone":
            self._halt(t, reason)
            return
        if reason in self.STOP_FAULTS:
            if reason in self.armed:
                if reason == "passenger_trapped":
                    self.passengers = max(1, self.passengers)
                self._halt(t, reason, *([(t, "safety_circuit_open")] if reason == "safety_circuit_open" else []))
            else:  # the fault ended before it could act: carry on to the landing
                self.pos, _ = self._run_state(run, t)
                self._start_run(t, run.to)
                self.trips -= 1
            return
        self.pos = run.to
        self.run_hours += (t - run.start) / 3600.0
        self.run = None
        if "door_open_fault" in self.armed:  # the doors do not open at the landing
            self.passengers = max(1, self.passengers)
            self._halt(t, "door_open_fault", (t + 10.0, "door_open_fault"))
            self.timers = [x for x in self.timers if x[1] != "stopped_outside_door_zone"]
            return
        self.door_open, self.door_cycles = True, self.door_cycles + 1
        self.passengers = 0 if self.rng.random() < 0.7 else self.rng.randint(1, 3)  # some ride on after a stop
        self.phase, self.phase_end = "opening", t + self.DOOR_OPEN_S

    def _read(self, t_s: float) -> dict[str, float]:
        if self.phase == "run" and self.run is not None:
            pos, speed = self._run_state(self.run, t_s)
            direction = 1.0 if self.run.to > self.run.frm else 2.0
        else:
            pos, speed, direction = self.pos, 0.0, 0.0
        moving = speed > 0.0
        load = self.passengers * 75.0 / self.rated_load * 100.0
        return {
            "service_mode": self.mode, "car_moving": 1.0 if moving else 0.0, "direction": direction if moving else 0.0,
            "door_zone": 1.0 if self._in_zone(pos) else 0.0,
            "floor": round(1.0 + pos / self.storey, 2), "door_locked": 0.0 if self.door_open else 1.0,
            "passenger_present": 1.0 if self.passengers else 0.0, "mains_power": 1.0 if self.power else 0.0,
            "speed": round(_clamp("speed", speed + (abs(self.rng.gauss(0, 0.005)) if moving else 0.0)), 3),
            "load": round(_clamp("load", load + self.rng.gauss(0, 0.5)) if self.passengers else 0.0, 1),
            "run_hours": round(self.run_hours, 2), "trips": self.trips, "door_cycles": self.door_cycles,
        }


Model = BoilerModel | HotWaterBoilerModel | VesselModel | ElevatorModel


def model_for(category: str, rated: Mapping[str, float], rng: random.Random, variety: str = "") -> Model:
    """The model of an equipment category ('1000', '2000', '3000'); variety 12xx is a hot-water boiler."""
    if category == "1000":
        return HotWaterBoilerModel(rated, rng) if variety.startswith("12") else BoilerModel(rated, rng)
    if category == "2000":
        return VesselModel(rated, rng)
    return ElevatorModel(rated, rng)
