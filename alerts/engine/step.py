"""One step of the engine: readings of one equipment in, effects out (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from alerts.engine.rules import Change, Condition, Rule, evaluate
from safewatch.contract import EVENTS_BY_TYPE, Severity


@dataclass(frozen=True, slots=True)
class RaiseAlert:
    """Open (or re-trigger) the alert of (equipment, rule)."""

    equipment_id: int
    rule_key: str
    severity: Severity
    metric: str | None
    value: float | None
    limit: float | None
    ts_ms: int
    message: str
    latched: bool = False


@dataclass(frozen=True, slots=True)
class ClearAlert:
    """The condition of (equipment, rule) has gone."""

    equipment_id: int
    rule_key: str
    metric: str | None
    value: float | None
    ts_ms: int


Effect = RaiseAlert | ClearAlert


def step(equipment_id: int, rated: Mapping[str, float], rules: Iterable[Rule],
         conditions: Mapping[str, Condition], readings: Iterable[tuple[str, int, float]],
         ) -> tuple[dict[str, Condition], list[Effect]]:
    """Evaluate ``readings`` (metric, ts_ms, value), in timestamp order, against ``rules``.

    Returns the conditions that changed (by rule key) and the effects to carry out.
    """
    by_metric: dict[str, list[tuple[Rule, float]]] = {}
    for rule in rules:
        limit = rule.limit.resolve(rated)
        if limit is not None:
            by_metric.setdefault(rule.metric, []).append((rule, limit))
    changed: dict[str, Condition] = {}
    effects: list[Effect] = []
    for metric, ts_ms, value in sorted(readings, key=lambda r: r[1]):
        for rule, limit in by_metric.get(metric, ()):
            before = changed.get(rule.key) or conditions.get(rule.key) or Condition()
            after, change = evaluate(rule, limit, before, value, ts_ms)
            if after != before:
                changed[rule.key] = after
            if change is Change.RAISE:
                effects.append(RaiseAlert(equipment_id, rule.key, rule.severity, metric, value, limit, ts_ms,
                                          f"{rule.message}: {metric}={value:g} (limit {limit:g})"))
            elif change is Change.CLEAR:
                effects.append(ClearAlert(equipment_id, rule.key, metric, value, ts_ms))
    return changed, effects


def event_rule_key(event_type: str) -> str:
    """The rule key under which a discrete event's alert is kept."""
    return f"event.{event_type}"


def event_effect(equipment_id: int, event_type: str, active: bool, ts_ms: int) -> Effect:
    """A discrete event becomes an alert directly, with the catalogue's severity and latching."""
    spec = EVENTS_BY_TYPE[event_type]
    key = event_rule_key(event_type)
    if not active:
        return ClearAlert(equipment_id, key, None, None, ts_ms)
    code = f" (fault {spec.fault_code})" if spec.fault_code else ""
    return RaiseAlert(equipment_id, key, spec.severity, None, None, None, ts_ms,
                      f"{spec.name_zh} {event_type}{code}", latched=spec.latched)
