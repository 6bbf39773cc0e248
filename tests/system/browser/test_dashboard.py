"""The dashboard in a real headless Chromium against the real API and PostgreSQL.

Log in, see only one's own jurisdiction, receive an alert live over server-sent events (raised through
the alert store, which NOTIFYs as the alert worker does), acknowledge it, and keep a screenshot of
every page under test-artifacts/browser/.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from alerts.engine.step import RaiseAlert, event_effect
from alerts.store import apply_effects, load_equipment_by_codes
from safewatch.contract import Severity
from tests.system.browser.conftest import Site, log_in, screenshot

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
        expected = conn.execute("SELECT count(*) FROM equipment e JOIN divisions d ON d.code = e.banner_code "
                                "WHERE d.league_code = '150200'").fetchone()[0]
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
    row.locator("button[data-more]").click()
    playwright_expect(page.locator(f"tr[data-detail='{inside}'] tbody tr")).to_have_count(2)
    screenshot(page, "04-alerts-acknowledged")


def test_equipment_emergency_kpi_pages_in_both_languages(site, new_page):
    eq = equipment_in(site, "150200")
    elevator = next(e for e in site.registry.equipment if e["category"] == "3000")
    with psycopg.connect(site.db_url) as conn:
        # A few readings so the live values show.
        conn.execute("INSERT INTO readings (time, equipment_id, metric_id, value) "
                     "SELECT now() - (g * interval '1 minute'), e.id, m.id, 1.0 + g / 100.0 "
                     "FROM equipment e, metrics m, generate_series(0, 5) g "
                     "WHERE e.code = %s AND m.category = e.category ON CONFLICT DO NOTHING", (eq["code"],))
    critical = raise_alert(site, eq["code"])
    trapped = raise_alert(site, elevator["code"], trapped=True)

    page = new_page(lang="en")
    log_in(page, site, user_with(site, "emergency_responder", "150000"))
    playwright_expect(page.locator("#nav a[data-page=alerts]")).to_have_text("Alerts")

    page.goto(f"{site.url}/#/equipment/{eq['code']}")
    page.wait_for_selector("#eq-registry")
    playwright_expect(page.locator("#eq-registry h3")).to_contain_text(eq["code"])
    playwright_expect(page.locator(f"#eq-alerts tr[data-alert='{critical}']")).to_have_count(1)
    assert page.locator("#eq-values .value").count() >= 1
    assert eq["next_inspection_on"].isoformat() in page.inner_text("#eq-inspections")
    screenshot(page, "05-equipment")

    page.click("#nav a[data-page=emergency]")
    first = page.locator("#emergency-cards .card").first
    playwright_expect(first).to_have_attribute("data-emergency", str(trapped))  # trapped passengers first
    playwright_expect(first.locator(".clock")).not_to_have_text("")
    screenshot(page, "06-emergency")

    page.click("#nav a[data-page=kpis]")
    page.wait_for_selector("#page-kpis[data-ready='1']")
    screenshot(page, "07-kpis")

    # 中文 on a wall display.
    wall = new_page(width=3840, height=2160, lang="zh")
    log_in(wall, site, user_with(site, "region_inspector", "150000"))
    playwright_expect(wall.locator("#nav a[data-page=alerts]")).to_have_text("告警")
    screenshot(wall, "08-overview-wall-zh")
    wall.click("#nav a[data-page=emergency]")
    playwright_expect(wall.locator("#emergency-cards .card").first).to_have_attribute("data-trapped", "1")
    screenshot(wall, "09-emergency-wall-zh")
