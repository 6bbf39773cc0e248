"""Alarm rules and their evaluation (pure).

A limit is either absolute or a factor of one of the equipment's rated parameters, so one rule
serves a 1.25 MPa and a 2.5 MPa boiler alike. Evaluation runs on event time (reading
timestamps), never the wall clock, so a replay raises the alerts the live run raised.

Every rule kind reduces a reading (or the passage of event time) to one *observed value* that is
compared with one limit by `evaluate`, so deadband, on-delay and off-delay work the same for all:

    kind             observed value                                   breach when
    threshold        the reading                                      > limit (high) / < limit (low)
    rate_of_change   change per minute over ``window_s``              > limit (rise) / < -limit (fall)
    flatline         max − min of the readings over ``window_s``      < limit (stuck sensor)
    out_of_range     1 when outside [low, limit], else 0              > 0.5
    no_data          seconds since the equipment's last reading       > limit
    anomaly          the streaming detector's score in [0, 1]         > limit
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from safewatch.contract import Category, Severity


class Direction(StrEnum):
    HIGH = "high"
    LOW = "low"


class RuleKind(StrEnum):
    """What a rule watches (stored in ``alerts.rule_key`` prefixes and the KPIs)."""

    THRESHOLD = "threshold"
    RATE_OF_CHANGE = "rate_of_change"
    FLATLINE = "flatline"
    OUT_OF_RANGE = "out_of_range"
    NO_DATA = "no_data"
    ANOMALY = "anomaly"
    EVENT = "event"
    INSPECTION = "inspection"


@dataclass(frozen=True, slots=True)
class Limit:
    """``absolute``, or ``factor`` × the rated parameter ``param`` (+ ``offset``).

    ``fallback`` is used when the equipment lacks ``param`` (e.g. the expected report interval).
    """

    absolute: float | None = None
    param: str | None = None
    factor: float = 1.0
    offset: float = 0.0
    fallback: float | None = None

    def resolve(self, rated: Mapping[str, float]) -> float | None:
        """The limit for one equipment; None when it lacks the rated parameter and there is no fallback."""
        if self.absolute is not None:
            return self.absolute
        if self.param is None or self.param not in rated:
            return self.fallback
        return self.factor * float(rated[self.param]) + self.offset


@dataclass(frozen=True, slots=True)
class Rule:
    """One alarm rule on one metric of one equipment category (see the module docstring per kind)."""

    key: str
    category: Category
    metric: str
    direction: Direction
    limit: Limit
    severity: Severity
    deadband: float = 0.0  # absolute, in the observed value's unit: how far back past the limit to clear
    on_delay_s: float = 0.0  # the condition must hold this long before the alert raises
    off_delay_s: float = 0.0  # and be gone this long before it clears
    message: str = ""
    kind: RuleKind = RuleKind.THRESHOLD
    window_s: float = 0.0  # rate_of_change / flatline: the event-time window looked at
    low: Limit | None = None  # out_of_range: the lower plausible bound (``limit`` is the upper)
    covered_by: tuple[str, ...] = ()  # rule keys whose active condition suppresses this one by design

    def __post_init__(self) -> None:
        if self.kind in (RuleKind.RATE_OF_CHANGE, RuleKind.FLATLINE) and self.window_s <= 0:
            raise ValueError(f"rule {self.key}: a {self.kind} rule needs window_s > 0")
        if self.kind is RuleKind.OUT_OF_RANGE and self.low is None:
            raise ValueError(f"rule {self.key}: an out_of_range rule needs a low limit")
        if self.deadband < 0 or self.on_delay_s < 0 or self.off_delay_s < 0:
            raise ValueError(f"rule {self.key}: deadband and delays must be >= 0")


@dataclass(frozen=True, slots=True)
class Override:
    """A per-equipment change of one rule: a new limit, deadband, delays, or the rule switched off."""

    rule_key: str
    limit: float | None = None
    low: float | None = None
    deadband: float | None = None
    on_delay_s: float | None = None
    off_delay_s: float | None = None
    enabled: bool = True


def apply_override(rule: Rule, override: Override | None) -> Rule | None:
    """The rule as it applies to one equipment; None when the override switches it off."""
    if override is None:
        return rule
    if not override.enabled:
        return None
    return replace(
        rule,
        limit=rule.limit if override.limit is None else Limit(absolute=override.limit),
        low=rule.low if override.low is None else Limit(absolute=override.low),
        deadband=rule.deadband if override.deadband is None else override.deadband,
        on_delay_s=rule.on_delay_s if override.on_delay_s is None else override.on_delay_s,
        off_delay_s=rule.off_delay_s if override.off_delay_s is None else override.off_delay_s,
    )


@dataclass(frozen=True, slots=True)
class Condition:
    """The detection state of one (equipment, rule); small and plain so it can be persisted."""

    active: bool = False
    pending_since_ms: int | None = None  # breach seen, on-delay running
    clearing_since_ms: int | None = None  # back inside the deadband, off-delay running
    last_ts_ms: int | None = None


class Change(StrEnum):
    RAISE = "raise"
    CLEAR = "clear"


def evaluate(rule: Rule, limit: float, cond: Condition, value: float, ts_ms: int, *,
             off_delay_s: float | None = None) -> tuple[Condition, Change | None]:
    """Advance one condition by one observed value; return the new condition and what changed, if anything.

    ``off_delay_s`` replaces the rule's off-delay (the chatter hold lengthens it).
    """
    last = cond.last_ts_ms
    if last is not None and ts_ms < last:
        return cond, None  # out-of-order reading: event time only moves forward
    # A rate rule's observed value is the change in its direction (a fall as a positive number).
    high = rule.direction is Direction.HIGH or rule.kind is RuleKind.RATE_OF_CHANGE
    breached = value > limit if high else value < limit
    # Conditions are built directly, not with dataclasses.replace: this runs for every reading and rule.
    if not cond.active:
        if not breached:
            return Condition(False, None, None, ts_ms), None
        since = cond.pending_since_ms if cond.pending_since_ms is not None else ts_ms
        if ts_ms - since >= rule.on_delay_s * 1000:
            return Condition(True, None, None, ts_ms), Change.RAISE
        return Condition(False, since, None, ts_ms), None
    cleared = value < limit - rule.deadband if high else value > limit + rule.deadband
    if not cleared:
        return Condition(True, None, None, ts_ms), None
    since = cond.clearing_since_ms if cond.clearing_since_ms is not None else ts_ms
    delay = rule.off_delay_s if off_delay_s is None else off_delay_s
    if ts_ms - since >= delay * 1000:
        return Condition(False, None, None, ts_ms), Change.CLEAR
    return Condition(True, None, since, ts_ms), None


def resolve_limits(rule: Rule, rated: Mapping[str, float]) -> tuple[float, float | None] | None:
    """(upper or only limit, lower limit of out_of_range) for one equipment; None when not applicable."""
    upper = rule.limit.resolve(rated)
    if upper is None:
        return None
    if rule.kind is RuleKind.OUT_OF_RANGE:
        assert rule.low is not None  # checked in __post_init__
        lower = rule.low.resolve(rated)
        if lower is None:
            return None
        return upper, lower
    return upper, None
