"""Escalation end to end on real timers: opening levels, climbing on time, stopping on acknowledge,
the 满洲里/二连浩特 routing, and restarts of the notifier while escalations are pending."""

from __future__ import annotations

import time

import psycopg

from tests.integration.notify.conftest import (
    acknowledge,
    add_contact,
    clear_condition,
    make_site,
    open_alert,
    query,
    set_policy,
)
from tests.waiting import wait_until

FIRED_LATE = """
SELECT kind, level, extract(epoch FROM fired_at - due_at) FROM escalation_timers
WHERE alert_id = %s AND fired_at IS NOT NULL ORDER BY id
"""
ESCALATIONS = "SELECT from_level, to_level, actor FROM alert_escalations WHERE alert_id = %s ORDER BY id"
LEVEL = "SELECT level FROM alerts WHERE id = %s"
TIMERS = "SELECT kind, level, fired_at IS NOT NULL, cancelled_at IS NOT NULL FROM escalation_timers WHERE alert_id = %s"


def _contacts_per_level(url, sink, banner, league, tag):
    for division, level in ((banner, "banner"), (league, "league"), ("150000", "region")):
        add_contact(url, division, f"{level} duty {tag}", [("webhook", sink.url(f"/{tag}/{level}"), None)])


def _alert_ids(requests, path):
    return [int(a["fingerprint"], 16) for r in requests if r.path == path for a in r.json()["alerts"]]


def test_major_climbs_banner_league_region_on_time_and_each_timer_fires_once(notify_url, sink, notifier):
    set_policy(notify_url, "major", open_levels=["banner"], max_level="region", banner_ack_s=2, league_ack_s=2)
    site = make_site(notify_url, "150102")
    _contacts_per_level(notify_url, sink, "150102", "150100", "climb")
    notifier().start()
    opened = time.time()  # the timers count from the trigger's clock, inside this call
    alert_id = open_alert(notify_url, site.equipment[0], severity="major")

    got = sink.wait(lambda rs: any(r.path == "/climb/region" for r in rs), timeout=15, what="region notification")
    at = {path: min(r.at for r in got if r.path == path) - opened for path in ("/climb/banner", "/climb/league",
                                                                               "/climb/region")}
    assert at["/climb/banner"] < 1.5
    assert 2 <= at["/climb/league"] < 3.5 and 4 <= at["/climb/region"] < 5.5, at
    for path in ("/climb/banner", "/climb/league", "/climb/region"):
        assert _alert_ids(got, path) == [alert_id], path  # each level told once
    fired = query(notify_url, FIRED_LATE, alert_id)
    assert [(k, lv) for k, lv, _ in fired] == [("open", None), ("climb", "league"), ("climb", "region")]
    assert all(late < 1.0 for _, _, late in fired), fired  # within a second of the due time
    assert query(notify_url, LEVEL, alert_id) == [("region",)]
    assert query(notify_url, ESCALATIONS, alert_id) == [("banner", "league", "escalation"),
                                                        ("league", "region", "escalation")]
    first = got[0].json()
    assert first["version"] == "4" and first["status"] == "firing"
    assert first["alerts"][0]["labels"]["alertname"] == "event.test"
    assert got[0].headers["Idempotency-Key"].startswith("sw-")


def test_critical_reaches_all_three_levels_at_once_and_acknowledge_stops_renotification(notify_url, sink, notifier):
    set_policy(notify_url, "critical", open_levels=["banner", "league", "region"], max_level="region",
               banner_ack_s=60, league_ack_s=60, renotify_s=1)
    site = make_site(notify_url, "150402")
    _contacts_per_level(notify_url, sink, "150402", "150400", "crit")
    notifier().start()
    alert_id = open_alert(notify_url, site.equipment[0], severity="critical")
    got = sink.wait(lambda rs: {r.path for r in rs} >= {"/crit/banner", "/crit/league", "/crit/region"}, timeout=5,
                    what="all three levels")
    assert max(r.at for r in got) - min(r.at for r in got) < 1.0
    assert query(notify_url, LEVEL, alert_id) == [("region",)]
    # Re-notified while unacknowledged (every second here) …
    sink.wait(lambda rs: len([r for r in rs if r.path == "/crit/banner"]) >= 2, timeout=5, what="re-notification")
    acknowledge(notify_url, alert_id)
    # … and not after: the acknowledgement cancelled the pending re-notification in its own transaction.
    pending = [t for t in query(notify_url, TIMERS, alert_id) if t[0] == "renotify" and not t[2]]
    assert pending and all(cancelled for *_, cancelled in pending)


def test_acknowledge_before_the_climb_keeps_it_at_the_banner(notify_url, sink, notifier):
    set_policy(notify_url, "major", open_levels=["banner"], max_level="region", banner_ack_s=2, league_ack_s=2)
    acked_site, barrier_site = make_site(notify_url, "150202"), make_site(notify_url, "150602")
    _contacts_per_level(notify_url, sink, "150202", "150200", "ack")
    _contacts_per_level(notify_url, sink, "150602", "150600", "bar")
    notifier().start()
    acked = open_alert(notify_url, acked_site.equipment[0], severity="major")
    sink.wait(lambda rs: any(r.path == "/ack/banner" for r in rs), what="banner notification")
    barrier = open_alert(notify_url, barrier_site.equipment[0], severity="major")  # due after the acked one
    acknowledge(notify_url, acked)
    # The barrier's climb is due later than the acknowledged alert's would have been: once it arrived,
    # the acknowledged one would have too.
    got = sink.wait(lambda rs: any(r.path == "/bar/league" for r in rs), what="barrier climb")
    assert _alert_ids(got, "/ack/league") == []
    assert _alert_ids(got, "/bar/league") == [barrier]
    assert query(notify_url, LEVEL, acked) == [("banner",)]
    assert ("climb", "league", False, True) in query(notify_url, TIMERS, acked)
    assert query(notify_url, LEVEL, barrier)[0][0] in ("league", "region")


def test_manzhouli_notifies_itself_and_hulunbuir(notify_url, sink, notifier):
    set_policy(notify_url, "minor", open_levels=["banner"], max_level="banner", banner_ack_s=3600, league_ack_s=3600)
    site = make_site(notify_url, "150781")
    add_contact(notify_url, "150781", "满洲里 duty", [("webhook", sink.url("/mzl"), None)])
    add_contact(notify_url, "150700", "呼伦贝尔 duty", [("webhook", sink.url("/hlbe"), None)])
    notifier().start()
    alert_id = open_alert(notify_url, site.equipment[0], severity="minor")
    got = sink.wait(lambda rs: {r.path for r in rs} >= {"/mzl", "/hlbe"}, what="满洲里 and 呼伦贝尔")
    assert _alert_ids(got, "/mzl") == [alert_id] and _alert_ids(got, "/hlbe") == [alert_id]
    assert query(notify_url, LEVEL, alert_id) == [("banner",)]  # notified, not escalated


def test_pending_climbs_survive_a_restart_and_fire_once_with_two_notifiers(notify_url, sink, notifier):
    set_policy(notify_url, "major", open_levels=["banner"], max_level="league", banner_ack_s=2, league_ack_s=60)
    sites = [make_site(notify_url, "150302") for _ in range(3)]
    _contacts_per_level(notify_url, sink, "150302", "150300", "rs")
    first = notifier().start()
    alerts = [open_alert(notify_url, s.equipment[0], severity="major") for s in sites]
    sink.wait(lambda rs: sorted(_alert_ids(rs, "/rs/banner")) == sorted(alerts), what="banner notifications")
    first.stop()  # down while the climbs are pending
    wait_until(lambda: query(notify_url, "SELECT count(*) FROM escalation_timers WHERE kind = 'climb' AND "
                                         "fired_at IS NULL AND due_at < clock_timestamp() AND alert_id = ANY(%s)",
                             alerts)[0][0], lambda n: n == 3, timeout=10, what="climbs due while the notifier is down")
    restarted = time.time()
    notifier().start()
    notifier().start()  # two at once: SKIP LOCKED keeps each timer to one of them
    got = sink.wait(lambda rs: len(_alert_ids(rs, "/rs/league")) >= 3, what="league notifications after restart")
    assert sorted(_alert_ids(got, "/rs/league")) == sorted(alerts)
    assert min(r.at for r in got if r.path == "/rs/league") - restarted < 3
    # Resolve one: its 'resolved' notification reaches both levels that heard of it, once each.
    clear_condition(notify_url, sites[0].equipment[0])
    acknowledge(notify_url, alerts[0])
    resolved = sink.wait(lambda rs: sum(r.json()["status"] == "resolved" for r in rs) >= 2, what="resolved")
    assert sorted(r.path for r in resolved if r.json()["status"] == "resolved") == ["/rs/banner", "/rs/league"]
    counts = query(notify_url, "SELECT count(*) FILTER (WHERE fired_at IS NOT NULL), count(*) FROM escalation_timers "
                               "WHERE alert_id = ANY(%s) AND kind IN ('open', 'climb')", alerts)
    assert counts == [(6, 6)]


MOVE = """
WITH moved AS (UPDATE alerts a SET state = %(to)s FROM (SELECT state FROM alerts WHERE id = %(id)s FOR UPDATE) old
               WHERE a.id = %(id)s RETURNING old.state AS from_state)
INSERT INTO alert_transitions (alert_id, from_state, to_state, actor, reason)
SELECT %(id)s, from_state, %(to)s, %(actor)s, 'test' FROM moved
"""
BORN_SUPPRESSED = """
WITH a AS (
    INSERT INTO alerts (equipment_id, rule_key, severity, state, active, division_code, league_code, message,
                        opened_at, updated_at)
    VALUES (%s, 'event.test', 'major', 'suppressed', true, %s, %s, 'suppressed at birth', now(), now())
    RETURNING id)
INSERT INTO alert_transitions (alert_id, from_state, to_state, actor, reason)
SELECT id, NULL, 'suppressed', 'engine', 'equipment out of service' FROM a RETURNING alert_id
"""


def _move(url, alert_id, to, actor="inspector-1"):
    """A state change with its transition row, as the alert engine and the alerts API write them."""
    with psycopg.connect(url) as conn:
        conn.execute(MOVE, {"id": alert_id, "to": to, "actor": actor})


def test_hidden_alerts_notify_nobody_until_they_come_back_into_view(notify_url, sink, notifier):
    set_policy(notify_url, "major", open_levels=["banner"], max_level="league", banner_ack_s=2, league_ack_s=60)
    hidden_site, barrier_site, shelved_site = (make_site(notify_url, "150702") for _ in range(3))
    add_contact(notify_url, "150702", "duty", [("webhook", sink.url("/hidden"), None)])
    notifier().start()
    eq = hidden_site.equipment[0]
    (hidden,) = query(notify_url, BORN_SUPPRESSED, eq.id, eq.banner_code, eq.league_code)[0]
    barrier = open_alert(notify_url, barrier_site.equipment[0], severity="major")
    got = sink.wait(lambda rs: barrier in _alert_ids(rs, "/hidden"), what="barrier notification")
    assert hidden not in _alert_ids(got, "/hidden")
    _move(notify_url, hidden, "active_unack", actor="engine")  # unsuppressed: back in view, unacknowledged
    sink.wait(lambda rs: hidden in _alert_ids(rs, "/hidden"), what="the alert once back in view")

    shelved = open_alert(notify_url, shelved_site.equipment[0], severity="major")
    sink.wait(lambda rs: shelved in _alert_ids(rs, "/hidden"), what="shelved alert's opening")
    _move(notify_url, shelved, "shelved")
    assert ("climb", "league", False, True) in query(notify_url, TIMERS, shelved)  # shelving stops the climb
    _move(notify_url, shelved, "active_unack")  # unshelved: escalation starts again
    got = sink.wait(lambda rs: _alert_ids(rs, "/hidden").count(shelved) == 2, what="re-announced on unshelve")
    wait_until(lambda: query(notify_url, LEVEL, shelved)[0][0], lambda lv: lv == "league", timeout=10,
               what="the climb after unshelving")
