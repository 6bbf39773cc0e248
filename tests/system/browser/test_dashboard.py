"""The dashboard in a real headless Chromium against the real API and PostgreSQL.

Log in, see only one's own jurisdiction, receive an alert live over server-sent events (raised through
the alert store, which NOTIFYs as the alert worker does), acknowledge it, type in its forms while live
events redraw the table, and keep a screenshot of every page under test-artifacts/browser/.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import psycopg
import pytest

from alerts.engine.step import RaiseAlert, event_effect
from alerts.store import apply_effects, load_equipment_by_codes
from ingest.batching import Batch, ReadingRow, Readings
from ingest.writer import prepare, write_batch
from safewatch.contract import METRICS, Severity
from safewatch.db import one_row
from tests.system.browser.conftest import PASSWORD, Site, log_in, screenshot
from tests.waiting import wait_until

pytestmark = pytest.mark.system

playwright_expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect


def raise_alert(site: Site, code: str, *, trapped: bool = False, severity: Severity = Severity.CRITICAL) -> int:
    """Open an alert through the alert worker's own store code (which pg_notify's it); return its id."""
    with psycopg.connect(site.db_url) as conn:
        info = load_equipment_by_codes(conn, [code], [])[0]
        ts_ms = int(time.time() * 1000)
        if trapped:
            effect = event_effect(info.id, "passenger_trapped", True, ts_ms)
        else:
            effect = RaiseAlert(info.id, f"browser.test.{ts_ms}", severity, "drum_pressure", 1.31, 1.2, ts_ms,
                                "锅筒压力超高 drum pressure high: drum_pressure=1.31 (limit 1.2)")
        [alert_id] = apply_effects(conn, [effect], {info.id: info})
    return alert_id


def equipment_in(site: Site, league: str) -> dict[str, Any]:
    banners = {g["id"]: g["league_code"] for g in site.registry.gateways}
    return next(e for e in site.registry.equipment if banners[e["gateway_id"]] == league)


def user_with(site: Site, role: str, division: str) -> str:
    return next(u for u, (r, d) in site.users.items() if r == role and d == division)


def test_league_inspector_sees_only_their_league(site, new_page):
    page = new_page()
    page.goto(site.url + "/")
    page.wait_for_selector("#login:not(.hidden)")
    screenshot(page, "00-login")
    log_in(page, site, user_with(site, "league_inspector", "150200"))

    codes = page.eval_on_selector_all("#tree tr[data-code]", "rows => rows.map(r => r.dataset.code)")
    assert codes[0] == "150200", "the league itself heads the tree"
    assert all(c.startswith("1502") for c in codes), codes
    assert not page.query_selector("#tree tr.region")
    assert len(codes) == 1 + 9  # 包头市 and its 9 banners
    # The equipment tile counts only this league's registry.
    with psycopg.connect(site.db_url) as conn:
        expected = one_row(conn.execute("SELECT count(*) FROM equipment e JOIN divisions d ON d.code = e.banner_code "
                                        "WHERE d.league_code = '150200'"))[0]
    playwright_expect(page.locator("[data-tile=equipment] .v")).to_have_text(f"{expected:,}")
    # The map draws only this league's cells: one league, one outline.
    assert page.locator("#map polygon.hull").count() == 1
    screenshot(page, "01-overview-league")

    # The region inspector, by contrast, sees the region and all 12 leagues.
    region = new_page()
    log_in(region, site, user_with(site, "region_inspector", "150000"))
    assert region.locator("#tree tr.region").count() == 1
    assert region.locator("#tree tr.league").count() == 12
    screenshot(region, "02-overview-region")


def test_live_alert_arrives_and_is_acknowledged(site, new_page):
    username = user_with(site, "league_inspector", "150200")
    page = new_page()
    log_in(page, site, username)
    page.wait_for_selector("body[data-live='1']")  # the event stream is subscribed and the hub LISTENs
    critical_before = int(page.inner_text("[data-tile=critical] .v").replace(",", ""))

    # An alert outside the league, then one inside: only the second may reach this browser.
    outside = raise_alert(site, equipment_in(site, "150100")["code"])
    inside_eq = equipment_in(site, "150200")
    inside = raise_alert(site, inside_eq["code"])
    # The overview counts move without a reload.
    playwright_expect(page.locator("[data-tile=critical] .v")).to_have_text(str(critical_before + 1))
    playwright_expect(page.locator(f"#map [data-map-alert='{inside}']")).to_have_count(1)

    page.click("#nav a[data-page=alerts]")
    row = page.locator(f"#alert-table tr[data-alert='{inside}']")
    playwright_expect(row.locator(".state")).to_have_attribute("data-state", "active_unack")
    assert page.locator(f"#alert-table tr[data-alert='{outside}']").count() == 0
    # Most severe first: the new critical alert sits above every less severe one.
    severities = page.eval_on_selector_all("#alert-table tr.alert-row", "rows => rows.map(r => r.dataset.severity)")
    assert severities == sorted(severities, key=["critical", "major", "minor", "warning"].index)
    screenshot(page, "03-alerts-live")

    row.locator("button[data-act=acknowledge]").click()
    playwright_expect(row.locator(".state")).to_have_attribute("data-state", "active_ack")
    with psycopg.connect(site.db_url) as conn:
        last = conn.execute("SELECT to_state, actor FROM alert_transitions WHERE alert_id = %s "
                            "ORDER BY id DESC LIMIT 1", (inside,)).fetchone()
    assert last == ("active_ack", username)
    # Assign it and leave a comment from the detail panel; both land in the alert's history.
    row.locator("button[data-more]").click()
    detail = page.locator(f"tr[data-detail='{inside}']")
    rescuer = user_with(site, "emergency_responder", "150000")
    detail.locator("form[data-form=assign] input[name=assignee]").fill(rescuer)
    detail.locator("form[data-form=assign] button").click()
    playwright_expect(row.locator("[data-assignee]")).to_have_attribute("data-assignee", rescuer)
    detail.locator("form[data-form=comment] input[name=text]").fill("已到现场 on site")
    detail.locator("form[data-form=comment] button").click()
    playwright_expect(detail.locator("tr[data-note]")).to_have_count(2)
    with psycopg.connect(site.db_url) as conn:
        assert conn.execute("SELECT assignee FROM alerts WHERE id = %s", (inside,)).fetchone() == (rescuer,)
    screenshot(page, "04-alerts-acknowledged")

    # A major alert climbs to the league if nobody acknowledges it: the feed counts down to that.
    major = raise_alert(site, inside_eq["code"], severity=Severity.MAJOR)
    major_row = page.locator(f"#alert-table tr[data-alert='{major}']")
    playwright_expect(major_row).to_have_count(1)
    wait_until(lambda: _climb_due(site, major), lambda due: due is not None, timeout=20,
               what="the notifier to schedule the climb")
    page.click("#nav a[data-page=overview]")
    page.click("#nav a[data-page=alerts]")
    playwright_expect(major_row.locator("[data-until]")).to_have_count(1)
    left = major_row.locator("[data-until]").inner_text()
    assert left.startswith("00:1"), f"a major alert climbs after 15 min; the feed shows {left}"
    # Shelve it (critical and latched alerts cannot be): the climb is cancelled with it.
    major_row.locator("button[data-more]").click()
    page.locator(f"tr[data-detail='{major}'] form[data-form=shelve] button").click()
    playwright_expect(major_row.locator(".state")).to_have_attribute("data-state", "shelved")
    playwright_expect(major_row.locator("[data-until]")).to_have_count(0)
    screenshot(page, "05-alerts-shelved")


def test_typing_in_an_open_alert_survives_live_redraws(site, new_page):
    """Live events redraw the alert table around an open alert; the field being typed in keeps its text
    and the focus, so the next keys land in it, and a change of the alert's state keeps the text too."""
    username = user_with(site, "league_inspector", "150200")
    page = new_page()
    log_in(page, site, username)
    page.wait_for_selector("body[data-live='1']")
    code = equipment_in(site, "150200")["code"]
    first = raise_alert(site, code, severity=Severity.MAJOR)
    page.click("#nav a[data-page=alerts]")
    page.locator(f"#alert-table tr[data-alert='{first}'] button[data-more]").click()
    comment = page.locator(f"tr[data-detail='{first}'] form[data-form=comment] input[name=text]")
    comment.click()
    page.keyboard.type("已到")

    # Another alert arrives: the table is drawn anew, the open panel moved into it.
    second = raise_alert(site, code, severity=Severity.MAJOR)
    playwright_expect(page.locator(f"#alert-table tr[data-alert='{second}']")).to_have_count(1)
    page.keyboard.type("现场")
    playwright_expect(comment).to_have_value("已到现场")

    # Someone else acknowledges the alert: its forms are drawn anew for the new state.
    with httpx.Client(base_url=site.url) as api:
        token = api.post("/api/v1/auth/token", data={"username": user_with(site, "region_inspector", "150000"),
                                                     "password": PASSWORD}).raise_for_status().json()["access_token"]
        api.post(f"/api/v1/alerts/{first}/acknowledge", json={},
                 headers={"Authorization": f"Bearer {token}"}).raise_for_status()
    playwright_expect(page.locator(f"tr[data-detail='{first}'] .detail-grid")).to_have_attribute(
        "data-forms", re.compile(r"^active_ack\|"))
    page.keyboard.type(" on site")
    playwright_expect(comment).to_have_value("已到现场 on site")
    playwright_expect(comment).to_be_focused()


def test_the_stream_survives_losing_its_database_connection(site, new_page):
    page = new_page()
    log_in(page, site, user_with(site, "region_inspector", "150000"))
    page.click("#nav a[data-page=alerts]")
    page.wait_for_selector("body[data-stream-ready='1']")
    with psycopg.connect(site.db_url, autocommit=True) as conn:
        killed = one_row(conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                      "WHERE application_name = 'safewatch-dashboard-hub' "
                                      "AND datname = current_database()"))[0]
    assert killed >= 1
    # The hub reconnects and LISTENs again; the page is told (ready) and refetches, then live alerts flow again.
    page.wait_for_selector("body[data-stream-ready='2']", timeout=20_000)
    alert_id = raise_alert(site, equipment_in(site, "152900")["code"])
    playwright_expect(page.locator(f"#alert-table tr[data-alert='{alert_id}']")).to_have_count(1)


def _climb_due(site: Site, alert_id: int) -> object:
    with psycopg.connect(site.db_url) as conn:
        row = one_row(conn.execute("SELECT min(due_at) FROM escalation_timers WHERE alert_id = %s AND kind = 'climb' "
                                   "AND fired_at IS NULL AND cancelled_at IS NULL", (alert_id,)))
    return row[0]


def test_equipment_emergency_kpi_pages_in_both_languages(site, new_page):
    eq = equipment_in(site, "150200")
    elevator = next(e for e in site.registry.equipment if e["category"] == "3000")
    with psycopg.connect(site.db_url) as conn:
        # Readings of the last minutes: live values and the last-hour chart come from them.
        eq_id, category = one_row(conn.execute("SELECT id, category FROM equipment WHERE code = %s",
                                               (eq["code"],)))
        now_ms = int(time.time() * 1000)
        prepare(conn)
        write_batch(conn, Batch(readings=Readings.of([ReadingRow(eq_id, m.id, now_ms - g * 60_000, 1.0 + g / 100.0)
                                          for m in METRICS if m.category == category for g in range(6)])))
        # An on-duty emergency team where the elevator stands.
        conn.execute("INSERT INTO contacts (division_code, name, kind) VALUES (%s, %s, 'emergency_team')",
                     (elevator["banner_code"], "96333 救援队 rescue team"))
    critical = raise_alert(site, eq["code"])
    trapped = raise_alert(site, elevator["code"], trapped=True)

    page = new_page(lang="en")
    log_in(page, site, user_with(site, "emergency_responder", "150000"))
    playwright_expect(page.locator("#nav a[data-page=alerts]")).to_have_text("Alerts")

    page.click("#nav a[data-page=equipment]")
    page.select_option("#eq-search select[name=division]", "150200")
    page.click("#eq-search button[type=submit]")
    page.wait_for_selector("#eq-list[data-division='150200']")
    playwright_expect(page.locator(f"#eq-list tr[data-eq='{eq['code']}']")).to_have_count(1)
    assert page.locator("#eq-list tr[data-eq]").count() == sum(
        1 for e in site.registry.equipment if e["banner_code"].startswith("1502"))
    screenshot(page, "06-equipment-list")

    page.goto(f"{site.url}/#/equipment/{eq['code']}")
    page.wait_for_selector("#eq-registry")
    playwright_expect(page.locator("#eq-registry h3")).to_contain_text(eq["code"])
    playwright_expect(page.locator(f"#eq-alerts tr[data-alert='{critical}']")).to_have_count(1)
    assert page.locator("#eq-values .value").count() >= 1
    assert page.locator("#eq-charts .chart svg path.line").count() >= 1
    assert eq["next_inspection_on"].isoformat() in page.inner_text("#eq-inspections")
    screenshot(page, "06-equipment-detail")

    page.click("#nav a[data-page=emergency]")
    first = page.locator("#emergency-cards .card").first
    playwright_expect(first).to_have_attribute("data-emergency", str(trapped))  # trapped passengers first
    playwright_expect(first.locator(".clock").first).not_to_have_text("")
    playwright_expect(first.locator(".contact")).to_contain_text("96333")
    # The trapped passenger's arrival deadline counts down (opened_at + the division's 30 or 60 min) …
    arrival = first.locator("[data-arrival]")
    playwright_expect(arrival).to_have_text(re.compile(r"^00:[0-5]\d:\d\d$"))
    playwright_expect(arrival).not_to_have_class(re.compile(r"\bbad\b"))
    playwright_expect(first).to_contain_text("Arrival deadline")
    # … and only trapped passengers have one.
    playwright_expect(page.locator(f"[data-emergency='{critical}'] [data-arrival]")).to_have_count(0)
    # The notifier sends a critical alert to league and region at once; the console shows it as it happens.
    playwright_expect(page.locator(f"[data-emergency='{critical}'] .badge.esc")).to_have_count(1)
    screenshot(page, "07-emergency")

    page.click("#nav a[data-page=kpis]")
    playwright_expect(page.locator("#kpi-table tr[data-kpi='150200']")).to_have_count(1)
    screenshot(page, "08-kpis")

    # 中文 on a wall display.
    wall = new_page(width=3840, height=2160, lang="zh")
    log_in(wall, site, user_with(site, "region_inspector", "150000"))
    playwright_expect(wall.locator("#nav a[data-page=alerts]")).to_have_text("告警")
    screenshot(wall, "09-overview-wall-zh")
    # Two hours on, nobody has arrived: the deadline has passed and shows red, counting past it.
    with psycopg.connect(site.db_url) as conn:
        conn.execute("UPDATE alerts SET opened_at = opened_at - interval '2 hours' WHERE id = %s", (trapped,))
    wall.click("#nav a[data-page=emergency]")
    wall_first = wall.locator("#emergency-cards .card").first
    playwright_expect(wall_first).to_have_attribute("data-trapped", "1")
    playwright_expect(wall_first).to_contain_text("到达时限")
    playwright_expect(wall_first.locator("[data-arrival]")).to_have_text(re.compile(r"^-0[01]:[0-5]\d:\d\d$"))
    playwright_expect(wall_first.locator("[data-arrival]")).to_have_class(re.compile(r"\bbad\b"))
    screenshot(wall, "10-emergency-wall-zh")
