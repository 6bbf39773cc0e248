"""System alerts on the dashboard (issue 22 point 5): a banner on every page for administrators and region
inspectors, in zh and en, with the message and since when; gone once cleared; never shown to a league
inspector (who does not even ask)."""

from __future__ import annotations

from datetime import datetime

import psycopg
import pytest

from api.auth.users import upsert_user
from safewatch.db import one_row
from tests.system.browser.conftest import PASSWORD, Site, log_in, screenshot

pytestmark = pytest.mark.system

playwright_expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

MESSAGE = "policy_refresh_continuous_aggregate jobs failing: the rollups stop; run CALL run_job (docs/deploying.md)"
OPEN = """
INSERT INTO system_alerts (source, key, severity, message) VALUES ('timescale_jobs', 'browser_test', 'major', %s)
RETURNING id, opened_at
"""
CLEAR = "UPDATE system_alerts SET cleared_at = clock_timestamp() WHERE id = %s"
POLL_TIMEOUT_MS = 25_000  # the dashboard polls every 10 s


def user_with(site: Site, role: str, division: str) -> str:
    return next(u for u, (r, d) in site.users.items() if r == role and d == division)


def test_system_alert_banner_on_every_page_for_those_allowed_and_gone_when_cleared(site, new_page):
    admin = f"admin-{site.registry.gateways[0]['id']}"
    with psycopg.connect(site.db_url) as conn:
        upsert_user(conn, admin, PASSWORD, "administrator", "150000")
        alert_id, opened_at = one_row(conn.execute(OPEN, (MESSAGE,)))

    region = new_page(lang="zh")
    log_in(region, site, user_with(site, "region_inspector", "150000"))
    banner = region.locator("#system-alerts")
    playwright_expect(banner).to_be_visible()
    playwright_expect(banner).to_contain_text("系统告警")
    playwright_expect(banner).to_contain_text(MESSAGE)
    since = banner.locator("time").get_attribute("datetime")
    assert since is not None and datetime.fromisoformat(since.replace("Z", "+00:00")) == opened_at
    for page in ("alerts", "equipment", "kpis"):  # on every page
        region.goto(f"{site.url}/#/{page}")
        playwright_expect(banner).to_contain_text(MESSAGE)
    screenshot(region, "20-system-alert-zh")

    english = new_page(lang="en")
    log_in(english, site, admin)
    playwright_expect(english.locator("#system-alerts")).to_contain_text("System alert")
    playwright_expect(english.locator("#system-alerts")).to_contain_text("since")
    screenshot(english, "21-system-alert-en")

    league = new_page()
    asked: list[str] = []
    league.on("request", lambda r: asked.append(r.url) if "/api/v1/system/" in r.url else None)
    log_in(league, site, user_with(site, "league_inspector", "150200"))
    league.goto(f"{site.url}/#/alerts")
    playwright_expect(league.locator("#system-alerts")).to_be_hidden()
    assert asked == []

    with psycopg.connect(site.db_url) as conn:
        conn.execute(CLEAR, (alert_id,))
    # Without a reload: the next poll takes it away.
    playwright_expect(banner).to_be_hidden(timeout=POLL_TIMEOUT_MS)
    playwright_expect(english.locator("#system-alerts")).to_be_hidden(timeout=POLL_TIMEOUT_MS)
    assert region.locator("#system-alerts .system-alert").count() == 0
