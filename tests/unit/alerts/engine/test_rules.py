"""Threshold evaluation: limits against rated parameters, deadband, on/off delays, event time, overrides."""

from __future__ import annotations

import pytest

from alerts.engine.defaults import DEFAULT_RULES
from alerts.engine.rules import (
    Change,
    Condition,
    Direction,
    Limit,
    Override,
    Rule,
    RuleKind,
    apply_override,
    evaluate,
)
from safewatch.contract import METRICS_BY_KEY, Category, Severity

HIGH = Rule("t.high", Category.BOILER, "drum_pressure", Direction.HIGH, Limit(absolute=1.2), Severity.MAJOR,
            deadband=0.02, on_delay_s=10, off_delay_s=5)


def run(rule: Rule, points: list[tuple[int, float]], limit: float = 1.2) -> list[tuple[int, Change]]:
    cond, changes = Condition(), []
    for ts, value in points:
        cond, change = evaluate(rule, limit, cond, value, ts)
        if change is not None:
            changes.append((ts, change))
    return changes


def test_limit_against_rated_parameter_and_fallback() -> None:
    assert Limit(param="rated_pressure", factor=0.96).resolve({"rated_pressure": 1.25}) == pytest.approx(1.2)
    assert Limit(param="rated_pressure", factor=0.96).resolve({}) is None
    assert Limit(param="report_interval_s", factor=3, fallback=300).resolve({}) == 300
    assert Limit(param="report_interval_s", factor=3, fallback=300).resolve({"report_interval_s": 5}) == 15


def test_on_delay_needs_the_breach_to_last_in_event_time() -> None:
    # A 5 s breach does not raise; one lasting 10 s raises at its 10th second (reading time, not arrival).
    assert run(HIGH, [(0, 1.3), (5_000, 1.3), (6_000, 1.0)]) == []
    assert run(HIGH, [(0, 1.3), (5_000, 1.3), (10_000, 1.3)]) == [(10_000, Change.RAISE)]


def test_deadband_and_off_delay_hold_the_alert() -> None:
    points = [(0, 1.3), (10_000, 1.3),   # raise
              (11_000, 1.19),            # below the limit but inside the 0.02 deadband: still active
              (12_000, 1.17), (16_000, 1.17),  # cleared for 4 s: off-delay of 5 s not met
              (17_000, 1.17)]            # 5 s: clears
    assert run(HIGH, points) == [(10_000, Change.RAISE), (17_000, Change.CLEAR)]


def test_low_direction() -> None:
    low = Rule("t.low", Category.BOILER, "drum_level", Direction.LOW, Limit(absolute=-50), Severity.MAJOR, deadband=5)
    assert run(low, [(0, -40), (1000, -51), (2000, -47), (3000, -44)], -50) == [(1000, Change.RAISE),
                                                                             (3000, Change.CLEAR)]


def test_out_of_order_reading_is_ignored() -> None:
    rule = Rule("t", Category.BOILER, "drum_pressure", Direction.HIGH, Limit(absolute=1.2), Severity.MAJOR)
    assert run(rule, [(10_000, 1.0), (5_000, 1.5), (11_000, 1.0)]) == []


def test_override_changes_one_rule_or_switches_it_off() -> None:
    rule = HIGH
    assert apply_override(rule, None) is rule
    assert apply_override(rule, Override("t.high", enabled=False)) is None
    changed = apply_override(rule, Override("t.high", limit=1.1, on_delay_s=0))
    assert changed is not None and changed.limit.absolute == 1.1 and changed.on_delay_s == 0
    assert changed.deadband == rule.deadband
    assert apply_override(rule, Override("t.high")) == rule


def test_rule_checks_itself() -> None:
    with pytest.raises(ValueError, match="window_s"):
        Rule("r", Category.BOILER, "drum_level", Direction.LOW, Limit(absolute=1), Severity.MINOR,
             kind=RuleKind.FLATLINE)
    with pytest.raises(ValueError, match="low limit"):
        Rule("r", Category.BOILER, "drum_level", Direction.HIGH, Limit(absolute=1), Severity.MINOR,
             kind=RuleKind.OUT_OF_RANGE)


def test_default_rules_are_unique_per_category_and_name_known_metrics() -> None:
    keys = [(r.category, r.key) for r in DEFAULT_RULES]
    assert len(keys) == len(set(keys))
    for r in DEFAULT_RULES:
        if r.kind in (RuleKind.THRESHOLD, RuleKind.RATE_OF_CHANGE, RuleKind.FLATLINE, RuleKind.OUT_OF_RANGE):
            assert METRICS_BY_KEY[r.metric].category == r.category, r.key
    # Every category has thresholds, a no-data rule, an anomaly rule and inspection rules.
    for cat in Category:
        kinds = {r.kind for r in DEFAULT_RULES if r.category == cat}
        assert {RuleKind.THRESHOLD, RuleKind.NO_DATA, RuleKind.ANOMALY, RuleKind.INSPECTION} <= kinds, cat
