"""Routing to divisions and contacts, grouping of floods, retry back-off, time at each level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.escalation import (
    ContactView,
    Level,
    Place,
    PlacementKind,
    divisions_to_notify,
    group_key,
    place_notification,
    retry_delay,
    time_at_levels,
    wants,
)

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
B, L, R = Level.BANNER, Level.LEAGUE, Level.REGION
DUAL = frozenset({"150781", "152501"})


def test_each_level_maps_to_the_equipments_own_division():
    place = Place("150102", "150100", "150000")
    assert divisions_to_notify([R, B], place, DUAL) == [(B, "150102"), (R, "150000")]


@pytest.mark.parametrize(("banner", "league"), [("150781", "150700"), ("152501", "152500")])
def test_manzhouli_and_erenhot_bring_their_parent_league_in(banner, league):
    assert divisions_to_notify([B], Place(banner, league, "150000"), DUAL) == [(B, banner), (B, league)]
    # ... and the league, when it is notified in its own right, is told once.
    assert divisions_to_notify([B, L], Place(banner, league, "150000"), DUAL) == [(B, banner), (B, league)]


def test_contacts_filter_by_duty_category_and_severity():
    rescue = ContactView(True, frozenset({"3000"}), "major")
    assert wants(rescue, severity="critical", category="3000")
    assert not wants(rescue, severity="minor", category="3000")
    assert not wants(rescue, severity="critical", category="1000")
    assert not wants(ContactView(False, None, "warning"), severity="critical", category="3000")
    assert wants(ContactView(True, None, "warning"), severity="warning", category="1000")


def test_group_key_is_the_site_and_status():
    assert group_key(gateway_id="gw-1", unit_id=4, equipment_id=9, status="firing") == "gw:gw-1|firing"
    assert group_key(gateway_id=None, unit_id=4, equipment_id=9, status="resolved") == "unit:4|resolved"
    assert group_key(gateway_id=None, unit_id=None, equipment_id=9, status="firing") == "eq:9|firing"


def test_a_flood_is_one_lead_then_one_follow_up_per_interval():
    first = place_notification(now=T0, interval_s=30, pending_due_at=None, last_created_at=None)
    assert first.kind is PlacementKind.LEAD and first.due_at == T0
    second = place_notification(now=T0 + timedelta(seconds=1), interval_s=30, pending_due_at=None,
                                last_created_at=T0)
    assert second.kind is PlacementKind.FOLLOW and second.due_at == T0 + timedelta(seconds=30)
    rest = place_notification(now=T0 + timedelta(seconds=2), interval_s=30, pending_due_at=second.due_at,
                              last_created_at=T0 + timedelta(seconds=1))
    assert rest.kind is PlacementKind.APPEND and rest.due_at == second.due_at
    later = place_notification(now=T0 + timedelta(seconds=90), interval_s=30, pending_due_at=None,
                               last_created_at=T0 + timedelta(seconds=1))
    assert later.kind is PlacementKind.LEAD


def test_grouping_off_sends_each_alert_alone():
    p = place_notification(now=T0, interval_s=0, pending_due_at=T0 + timedelta(seconds=5), last_created_at=T0)
    assert p.kind is PlacementKind.LEAD


def test_retry_back_off_doubles_up_to_the_cap_with_a_fixed_jitter():
    delays = [retry_delay(n, base_s=1, max_s=60, salt=0) for n in range(1, 9)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    jittered = retry_delay(3, base_s=1, max_s=60, salt=12345)
    assert 4 <= jittered <= 4.8 and jittered == retry_delay(3, base_s=1, max_s=60, salt=12345)
    with pytest.raises(ValueError, match="starts at 1"):
        retry_delay(0, base_s=1, max_s=60)


def test_time_at_each_level_until_acknowledged():
    spent = time_at_levels(opened_at=T0, changes=[(T0 + timedelta(seconds=600), L), (T0 + timedelta(seconds=1500), R)],
                           until=T0 + timedelta(seconds=1600))
    assert spent == {B: 600.0, L: 900.0, R: 100.0}
    at_once = time_at_levels(opened_at=T0, changes=[(T0, R)], until=T0 + timedelta(seconds=42))
    assert at_once == {B: 0.0, L: 0.0, R: 42.0}
