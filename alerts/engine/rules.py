"""Threshold rules and their evaluation (pure).

A limit is either absolute or a factor of one of the equipment's rated parameters, so one rule
serves a 1.25 MPa and a 2.5 MPa boiler alike. Evaluation runs on event time (reading
timestamps), never the wall clock, so a replay raises the alerts the live run raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from safewatch.contract import Category, Severity


class Direction(StrEnum):
    HIGH = "high"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class Limit:
    """``absolute``, or ``factor`` × the rated parameter ``param`` (+ ``offset``)."""

    absolute: float | None = None
    param: str | None = None
    factor: float = 1.0
    offset: float = 0.0

    def resolve(self, rated: Mapping[str, float]) -> float | None:
        """The limit for one equipment; None when it lacks the rated parameter."""
        if self.absolute is not None:
            return self.absolute
        if self.param is None or self.param not in rated:
            return None
        return self.factor * float(rated[self.param]) + self.offset


@dataclass(frozen=True, slots=True)
class Rule:
    """One alarm rule on one metric of one equipment category."""

    key: str
    category: Category
    metric: str
    direction: Direction
    limit: Limit
    severity: Severity
    deadband: float = 0.0  # absolute, in the metric's unit: how far back past the limit to clear
    on_delay_s: float = 0.0  # the condition must hold this long before the alert raises
    off_delay_s: float = 0.0  # and be gone this long before it clears
    message: str = ""


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


def evaluate(rule: Rule, limit: float, cond: Condition, value: float, ts_ms: int) -> tuple[Condition, Change | None]:
    """Advance one condition by one reading; return the new condition and what changed, if anything."""
    if cond.last_ts_ms is not None and ts_ms < cond.last_ts_ms:
        return cond, None  # out-of-order reading: event time only moves forward
    high = rule.direction is Direction.HIGH
    breached = value > limit if high else value < limit
    if not cond.active:
        if not breached:
            return replace(cond, pending_since_ms=None, last_ts_ms=ts_ms), None
        since = cond.pending_since_ms if cond.pending_since_ms is not None else ts_ms
        if ts_ms - since >= rule.on_delay_s * 1000:
            return Condition(True, None, None, ts_ms), Change.RAISE
        return replace(cond, pending_since_ms=since, last_ts_ms=ts_ms), None
    cleared = value < limit - rule.deadband if high else value > limit + rule.deadband
    if not cleared:
        return replace(cond, clearing_since_ms=None, last_ts_ms=ts_ms), None
    since = cond.clearing_since_ms if cond.clearing_since_ms is not None else ts_ms
    if ts_ms - since >= rule.off_delay_s * 1000:
        return Condition(False, None, None, ts_ms), Change.CLEAR
    return replace(cond, clearing_since_ms=since, last_ts_ms=ts_ms), None
