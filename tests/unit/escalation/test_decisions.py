"""Escalation decisions on a fake clock: opening levels, climbing, re-notifying, stopping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.escalation import (
    AlertView,
    EscalationPolicy,
    Level,
    PolicyError,
    Timer,
    TimerKind,
    next_escalation,
    select_policy,
)

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
B, L, R = Level.BANNER, Level.LEAGUE, Level.REGION

CRITICAL = EscalationPolicy("critical", None, frozenset({B, L, R}), R, 300, 300, 300)
MAJOR = EscalationPolicy("major", None, frozenset({B}), R, 600, 900, None)
MINOR = EscalationPolicy("minor", None, frozenset({B}), B, 3600, 3600, 1800)
WARNING = EscalationPolicy("warning", None, frozenset({B}), B, 3600, 3600, None)
DEFAULTS = (CRITICAL, MAJOR, MINOR, WARNING)


def alert(severity: str = "major", level: Level = B, *, ack: bool = False, closed: bool = False,
          notified: frozenset[Level] = frozenset()) -> AlertView:
    return AlertView(1, severity, "3000", level, ack, closed, notified)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_critical_notifies_banner_league_and_region_at_once():
    d = next_escalation(CRITICAL, alert("critical"), Timer(TimerKind.OPEN, T0), T0)
    assert d.notify == (B, L, R)
    assert d.new_level is R
    assert [t.kind for t in d.timers] == [TimerKind.RENOTIFY]  # nowhere left to climb
    assert d.timers[0].due_at == at(300)


def test_major_starts_at_the_banner_and_climbs_on_schedule():
    opened = next_escalation(MAJOR, alert(), Timer(TimerKind.OPEN, T0), T0)
    assert opened.notify == (B,) and opened.new_level is None
    (climb,) = opened.timers
    assert (climb.kind, climb.level, climb.due_at) == (TimerKind.CLIMB, L, at(600))

    to_league = next_escalation(MAJOR, alert(notified=frozenset({B})), Timer(TimerKind.CLIMB, at(600), L), at(600.2))
    assert to_league.notify == (L,) and to_league.new_level is L
    (climb,) = to_league.timers
    assert (climb.level, climb.due_at) == (R, at(600 + 900))  # the league's own window, from the due time

    to_region = next_escalation(MAJOR, alert(level=L), Timer(TimerKind.CLIMB, at(1500), R), at(1500))
    assert to_region.notify == (R,) and to_region.new_level is R and to_region.timers == ()


@pytest.mark.parametrize("policy", [MINOR, WARNING])
def test_minor_and_warning_stay_at_the_banner(policy):
    d = next_escalation(policy, alert(policy.severity), Timer(TimerKind.OPEN, T0), T0)
    assert d.notify == (B,)
    assert all(t.kind is not TimerKind.CLIMB for t in d.timers)


def test_renotify_while_unacknowledged_repeats_every_interval():
    d = next_escalation(MINOR, alert("minor", notified=frozenset({B})), Timer(TimerKind.RENOTIFY, at(1800)), at(1800))
    assert d.notify == (B,)
    assert [t.due_at for t in d.timers] == [at(3600)]


def test_a_late_renotify_is_sent_once_and_keeps_the_schedule():
    # The notifier was down for 2 h: one re-notification now, the next on the original grid.
    d = next_escalation(MINOR, alert("minor", notified=frozenset({B})), Timer(TimerKind.RENOTIFY, at(1800)),
                        at(1800 + 7200 + 5))
    assert d.notify == (B,)
    assert [t.due_at for t in d.timers] == [at(1800 * 6)]


@pytest.mark.parametrize(("ack", "closed", "why"), [(True, False, "acknowledged"), (False, True, "closed")])
@pytest.mark.parametrize("kind", [TimerKind.CLIMB, TimerKind.RENOTIFY])
def test_acknowledge_or_resolve_stops_escalation(ack, closed, why, kind):
    d = next_escalation(MAJOR, alert(ack=ack, closed=closed), Timer(kind, at(600), L if kind is TimerKind.CLIMB
                                                                    else None), at(600))
    assert d.notify == () and d.new_level is None and d.timers == ()
    assert why in d.reason


def test_an_alert_acknowledged_before_its_opening_fired_is_announced_but_not_escalated():
    d = next_escalation(MAJOR, alert(ack=True), Timer(TimerKind.OPEN, T0), at(30))
    assert d.notify == (B,) and d.timers == ()


def test_resolve_tells_every_level_that_was_notified():
    closed = alert(level=L, closed=True, notified=frozenset({L, B}))
    d = next_escalation(MAJOR, closed, Timer(TimerKind.RESOLVE, T0), T0)
    assert d.notify == (B, L) and d.status == "resolved" and d.timers == ()


def test_a_climb_beyond_a_lowered_max_level_is_dropped():
    lowered = EscalationPolicy("major", None, frozenset({B}), B, 600, 900, None)
    d = next_escalation(lowered, alert(), Timer(TimerKind.CLIMB, at(600), L), at(600))
    assert d.notify == () and d.new_level is None


def test_category_policy_overrides_the_severity_default():
    elevators = EscalationPolicy("major", "3000", frozenset({B, L}), R, 120, 300, None)
    assert select_policy((*DEFAULTS, elevators), "major", "3000") is elevators
    assert select_policy((*DEFAULTS, elevators), "major", "1000") is MAJOR
    with pytest.raises(PolicyError, match="no escalation policy"):
        select_policy((MAJOR,), "critical", "1000")


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"open_levels": frozenset()}, "open_levels"),
    ({"open_levels": frozenset({R}), "max_level": L}, "max_level"),
    ({"banner_ack_s": 0}, "banner_ack_s"),
    ({"renotify_s": -5}, "renotify_s"),
    ({"severity": "urgent"}, "severity"),
])
def test_an_inconsistent_policy_names_its_field(kwargs, field):
    base = {"severity": "major", "category": None, "open_levels": frozenset({B}), "max_level": R,
            "banner_ack_s": 60, "league_ack_s": 60, "renotify_s": None}
    with pytest.raises(PolicyError) as err:
        EscalationPolicy(**{**base, **kwargs})
    assert err.value.field == field
