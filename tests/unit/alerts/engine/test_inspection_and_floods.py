"""Registry alerts at an explicit ``now``, and flood detection per division over event time."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from alerts.engine.defaults import INSPECTION_RULES
from alerts.engine.inspection import OVERDUE_KEY, REGISTRATION_KEY, RegistryFacts, local_date, registry_effects
from alerts.engine.nuisance import FLOOD_WINDOW_MS, FloodChange, FloodState, flood_step
from alerts.engine.step import ClearAlert, RaiseAlert
from safewatch.contract import Category

RULES = [r for r in INSPECTION_RULES if r.category is Category.ELEVATOR]
NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)  # already 26 Nov in Inner Mongolia (UTC+8)


def facts(**kw) -> RegistryFacts:
    base = {"equipment_id": 1, "status": "in_use", "next_inspection_on": date(2027, 1, 1),
            "registration_no": "梯11蒙A00001(24)", "commissioned_on": date(2024, 6, 1)}
    return RegistryFacts(**{**base, **kw})


def test_dates_are_local_and_now_is_explicit() -> None:
    assert local_date(NOW) == date(2026, 11, 26)
    with pytest.raises(ValueError, match="timezone"):
        local_date(datetime(2026, 11, 25))
    assert registry_effects(facts(next_inspection_on=date(2026, 11, 26)), RULES, set(), NOW) == []
    [e] = registry_effects(facts(next_inspection_on=date(2026, 11, 25)), RULES, set(), NOW)
    assert isinstance(e, RaiseAlert) and e.rule_key == OVERDUE_KEY and "overdue by 1 d" in e.message
    assert e.ts_ms == int(NOW.timestamp() * 1000)


def test_raised_once_and_cleared_when_resolved() -> None:
    overdue = facts(next_inspection_on=date(2026, 1, 1))
    assert registry_effects(overdue, RULES, {OVERDUE_KEY}, NOW) == []
    [clear] = registry_effects(facts(), RULES, {OVERDUE_KEY}, NOW)
    assert isinstance(clear, ClearAlert)
    # Not in use: nothing is due, and what was raised clears.
    assert isinstance(registry_effects(facts(status="suspended", next_inspection_on=date(2026, 1, 1)), RULES,
                                       {OVERDUE_KEY}, NOW)[0], ClearAlert)


def test_registration_expired_or_never_made() -> None:
    [e] = registry_effects(facts(registration_expires_on=date(2026, 11, 1)), RULES, set(), NOW)
    assert isinstance(e, RaiseAlert)
    assert e.rule_key == REGISTRATION_KEY and "expired on 2026-11-01" in e.message
    [e] = registry_effects(facts(registration_no=None, commissioned_on=date(2026, 10, 1)), RULES, set(), NOW)
    assert isinstance(e, RaiseAlert)
    assert "not registered within 30 days" in e.message
    assert registry_effects(facts(registration_no=None, commissioned_on=date(2026, 11, 1)), RULES, set(), NOW) == []


def test_flood_is_more_than_ten_alerts_in_ten_minutes() -> None:
    t0 = 1_764_000_000_000
    state, change = flood_step(FloodState(), [t0 + i * 1000 for i in range(10)], t0 + 10_000)
    assert change is None and not state.flooding
    state, change = flood_step(state, [t0 + 11_000], t0 + 11_000)
    assert change is FloodChange.STARTED and state.peak == 11
    state, change = flood_step(state, [t0 + 12_000], t0 + 12_000)
    assert change is None and state.peak == 12
    state, change = flood_step(state, [], t0 + FLOOD_WINDOW_MS + 5_000)  # the first 6 have left the window
    assert change is FloodChange.ENDED and state.peak == 12 and len(state.times) == 6
