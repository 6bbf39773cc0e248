"""Two worlds (issue 25, migration 045): a hazard climbs on the hazard policy in seconds here, while an overdue
inspection on the same site is told to the banner only and climbs on its own slow supervision policy."""

from __future__ import annotations

import time

import psycopg

from alerts.engine.rules import RuleKind
from alerts.engine.step import RaiseAlert
from alerts.store import apply_effects
from safewatch.contract import Severity
from tests.integration.notify.conftest import add_contact, make_site, open_alert, query, set_policy

CLIMBS = """
SELECT level, extract(epoch FROM due_at - (SELECT at FROM alert_transitions WHERE alert_id = %s ORDER BY id LIMIT 1))
FROM escalation_timers WHERE alert_id = %s AND kind = 'climb' ORDER BY id
"""
WEEK_S = 7 * 24 * 3600


def _alert_ids(requests, path):
    return [int(a["fingerprint"], 16) for r in requests if r.path == path for a in r.json()["alerts"]]


def test_supervision_escalates_on_its_own_slow_policy_hazards_on_theirs(notify_url, sink, notifier):
    set_policy(notify_url, "major", open_levels=["banner"], max_level="region", banner_ack_s=2, league_ack_s=60)
    site = make_site(notify_url, "150203", n=2)
    for division, level in (("150203", "banner"), ("150200", "league"), ("150000", "region")):
        add_contact(notify_url, division, f"{level} duty worlds", [("webhook", sink.url(f"/w/{level}"), None)])
    notifier().start()
    overdue_eq, hazard_eq = site.equipment
    with psycopg.connect(notify_url) as conn:
        effect = RaiseAlert(overdue_eq.id, "inspection.overdue", Severity.MAJOR, None, None, None,
                            int(time.time() * 1000), "periodic inspection overdue by 3 d", kind=RuleKind.INSPECTION)
        (overdue,) = apply_effects(conn, [effect], {overdue_eq.id: overdue_eq})
    hazard = open_alert(notify_url, hazard_eq, severity="major")

    got = sink.wait(lambda rs: hazard in _alert_ids(rs, "/w/league") and overdue in _alert_ids(rs, "/w/banner"),
                    timeout=15, what="the hazard at the league, the overdue inspection at the banner")
    assert query(notify_url, "SELECT id, world FROM alerts WHERE id = ANY(%s) ORDER BY id", [overdue, hazard]) == [
        (overdue, "supervision"), (hazard, "hazard")]
    # The hazard climbed after 2 s; the paperwork stays with the banner for a week, then goes to the league.
    assert query(notify_url, "SELECT level FROM alerts WHERE id = %s", hazard) == [("league",)]
    assert query(notify_url, "SELECT level FROM alerts WHERE id = %s", overdue) == [("banner",)]
    [(level, due_s)] = query(notify_url, CLIMBS, overdue, overdue)
    assert level == "league" and abs(float(due_s) - WEEK_S) < 60, due_s
    assert overdue not in _alert_ids(got, "/w/league") + _alert_ids(got, "/w/region")
