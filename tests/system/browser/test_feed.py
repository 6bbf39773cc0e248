"""The duty room's first three points of issue 25, in a real headless Chromium against the real API and PostgreSQL.

1. A feed that cannot hide danger: 5,000 open alerts (seeded in SQL) of which 40 critical, the oldest of all:
   every critical is on the feed's first screen, with the totals per severity and "showing N of M".
2. Two worlds: an overdue inspection reaches the supervision worklist (with its due date), never the feed nor
   the emergency console.
3. Heard at once: a new critical (and a trapped passenger) raises a browser notification, observed through a
   wrapped ``window.Notification`` in the page's init script, flashes the title and repeats until acknowledged.
"""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from alerts.engine.rules import RuleKind
from alerts.engine.step import RaiseAlert
from alerts.store import apply_effects, load_equipment_by_codes
from safewatch.contract import Severity
from safewatch.db import one_row
from tests.system.browser.conftest import PASSWORD, Site, log_in, screenshot
from tests.system.browser.test_dashboard import equipment_in, raise_alert, user_with

pytestmark = pytest.mark.system

playwright_expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

OPEN_ALERTS, CRITICALS = 5000, 40
# Every open alert gets a rule key of its own (one open alert per equipment and rule); the criticals are the
# oldest, so a feed that took the newest N and sorted them in the browser would show none of them.
SEED_ALERTS = """
INSERT INTO alerts (equipment_id, rule_key, severity, state, active, division_code, league_code, message,
                    opened_at, updated_at)
SELECT e.id, 'seed.feed.' || g,
       CASE WHEN g <= %(criticals)s THEN 'critical' ELSE (ARRAY['major', 'minor', 'warning'])[1 + g %% 3] END,
       CASE WHEN g %% 2 = 0 THEN 'active_unack' ELSE 'active_ack' END, true, e.banner_code, d.league_code,
       'seeded for the feed test', now() - interval '3 days' + g * interval '1 second', now()
FROM generate_series(1, %(n)s) g
JOIN LATERAL (SELECT id, banner_code FROM equipment ORDER BY id OFFSET g %% %(equipment)s LIMIT 1) e ON true
JOIN divisions d ON d.code = e.banner_code
RETURNING id, severity
"""
# Records every notification the page makes (and whether it was closed), in front of the real constructor.
WRAP_NOTIFICATION = """
(() => {
  const Real = window.Notification;
  window.__notes = [];
  if (!Real) return;
  function Wrapped(title, options = {}) {
    const n = new Real(title, options);
    const rec = { title, tag: options.tag, body: options.body, closed: false };
    window.__notes.push(rec);
    const close = n.close.bind(n);
    n.close = () => { rec.closed = true; close(); };
    return n;
  }
  Object.defineProperty(Wrapped, "permission", { get: () => Real.permission });
  Wrapped.requestPermission = (...args) => Real.requestPermission(...args);
  Wrapped.prototype = Real.prototype;
  window.Notification = Wrapped;
})();
"""


@pytest.fixture(scope="module")
def seeded_criticals(site: Site) -> set[int]:
    with psycopg.connect(site.db_url) as conn:
        equipment = one_row(conn.execute("SELECT count(*) FROM equipment"))[0]
        rows = conn.execute(SEED_ALERTS, {"n": OPEN_ALERTS, "criticals": CRITICALS, "equipment": equipment}).fetchall()
    return {i for i, severity in rows if severity == "critical"}


def test_a_feed_of_5000_open_alerts_shows_every_critical_on_its_first_screen(site, new_page, seeded_criticals):
    assert len(seeded_criticals) == CRITICALS
    page = new_page()
    log_in(page, site, user_with(site, "region_inspector", "150000"))
    page.click("#nav a[data-page=alerts]")
    showing = page.locator("#alert-totals .showing")
    playwright_expect(showing).to_have_attribute("data-total", str(OPEN_ALERTS))
    playwright_expect(showing).to_have_attribute("data-shown", "100")
    playwright_expect(showing).to_have_text("显示 100 条 / 共 5,000 条")
    playwright_expect(page.locator("#alert-totals [data-total=critical] b")).to_have_text(str(CRITICALS))
    rows = page.eval_on_selector_all("#alert-table tr.alert-row",
                                     "rows => rows.map(r => [+r.dataset.alert, r.dataset.severity])")
    assert {i for i, _ in rows[:CRITICALS]} == seeded_criticals
    assert all(severity == "critical" for _, severity in rows[:CRITICALS])
    # Unacknowledged first within a severity.
    states = page.eval_on_selector_all("#alert-table tr.alert-row td.state", "cells => cells.map(c => c.dataset.state)")
    assert states[:CRITICALS] == sorted(states[:CRITICALS], key=lambda s: s != "active_unack")
    # The first screen, without scrolling: the board holds every critical, then the totals and the first row.
    chips = page.locator("#critical-board [data-crit]")
    playwright_expect(chips).to_have_count(CRITICALS)
    assert {int(i) for i in chips.evaluate_all("cs => cs.map(c => c.dataset.crit)")} == seeded_criticals
    playwright_expect(page.locator("#critical-board .board-head")).to_contain_text(f"危急 {CRITICALS}")
    # Measured in one go (a live refresh may redraw the board between two calls).
    bottoms = page.evaluate("""() => [...document.querySelectorAll('#critical-board [data-crit]'),
        document.querySelector('#alert-totals'), document.querySelector('#alert-table tr.alert-row')]
        .map(el => el.getBoundingClientRect().bottom)""")
    assert len(bottoms) == CRITICALS + 2 and max(bottoms) <= page.viewport_size["height"], bottoms
    screenshot(page, "20-feed-5000-zh")
    # The next page comes from the server, in the same order.
    page.click("#alert-more")
    playwright_expect(showing).to_have_attribute("data-shown", "200")
    assert page.locator("#alert-table tr.alert-row[data-severity=critical]").count() == CRITICALS

    # The emergency console holds every critical too, and says how many.
    page.click("#nav a[data-page=emergency]")
    console = page.locator("#emergency-totals .showing")
    playwright_expect(console).to_have_attribute("data-total", str(CRITICALS))
    playwright_expect(page.locator("#emergency-cards .card")).to_have_count(CRITICALS)

    en = new_page(lang="en")
    log_in(en, site, user_with(site, "region_inspector", "150000"))
    en.click("#nav a[data-page=alerts]")
    playwright_expect(en.locator("#alert-totals .showing")).to_have_text("Showing 100 of 5,000")
    playwright_expect(en.locator("#alert-totals [data-total=critical]")).to_contain_text("Critical")
    screenshot(en, "21-feed-5000-en")


def _raise_overdue_inspection(site: Site, code: str) -> int:
    """An overdue inspection as the alert worker raises it (rule kind 'inspection')."""
    with psycopg.connect(site.db_url) as conn:
        conn.execute("UPDATE equipment SET next_inspection_on = %s WHERE code = %s",
                     (date.today() - timedelta(days=40), code))
        info = load_equipment_by_codes(conn, [code], [])[0]
        effect = RaiseAlert(info.id, "inspection.overdue", Severity.MAJOR, None, None, None, int(time.time() * 1000),
                            "periodic inspection overdue by 40 d", kind=RuleKind.INSPECTION)
        [alert_id] = apply_effects(conn, [effect], {info.id: info})
    return alert_id


def test_supervision_matters_go_to_their_worklist_never_to_the_feed_or_the_console(site, new_page,
                                                                                   seeded_criticals):
    league = "150200"
    equipment = [e for e in site.registry.equipment if e["banner_code"].startswith("1502")]
    overdue = _raise_overdue_inspection(site, equipment[1]["code"])
    hazard = raise_alert(site, equipment[2]["code"])
    page = new_page(lang="en")
    log_in(page, site, user_with(site, "league_inspector", league))

    page.click("#nav a[data-page=supervision]")
    row = page.locator(f"#sup-table tr[data-supervision='{overdue}']")
    playwright_expect(row).to_have_count(1)
    playwright_expect(row).to_contain_text((date.today() - timedelta(days=40)).isoformat())
    playwright_expect(row).to_contain_text("Periodic inspection overdue")
    playwright_expect(page.locator(f"#sup-divisions tr[data-sup-division='{equipment[1]['banner_code']}']")
                      ).to_have_count(1)
    screenshot(page, "22-supervision-en")

    page.click("#nav a[data-page=emergency]")
    playwright_expect(page.locator(f"#emergency-cards [data-emergency='{hazard}']")).to_have_count(1)
    assert page.locator(f"#emergency-cards [data-emergency='{overdue}']").count() == 0
    page.click("#nav a[data-page=alerts]")
    playwright_expect(page.locator(f"#alert-table tr[data-alert='{hazard}']")).to_have_count(1)
    assert page.locator(f"#alert-table tr[data-alert='{overdue}']").count() == 0

    zh = new_page(lang="zh")
    log_in(zh, site, user_with(site, "league_inspector", league))
    zh.click("#nav a[data-page=supervision]")
    playwright_expect(zh.locator(f"#sup-table tr[data-supervision='{overdue}']")).to_contain_text("定期检验超期")
    screenshot(zh, "23-supervision-zh")


def _notes(page: Any, alert_id: int) -> list[dict[str, Any]]:
    return page.evaluate("tag => window.__notes.filter(n => n.tag === tag)", f"sw-alert-{alert_id}")


def test_a_new_critical_notifies_flashes_and_repeats_until_acknowledged(site, new_page, seeded_criticals):
    page = new_page()
    page.context.grant_permissions(["notifications"], origin=site.url)
    page.context.add_init_script(WRAP_NOTIFICATION)
    page.context.add_init_script("localStorage.setItem('sw_alarm_repeat_ms', '1000')")
    log_in(page, site, user_with(site, "league_inspector", "150200"))
    page.wait_for_selector("body[data-live='1']")
    normal_title = page.title()
    assert not normal_title.startswith("⚠")

    alert_id = raise_alert(site, equipment_in(site, "150200")["code"])
    page.wait_for_function("tag => window.__notes.some(n => n.tag === tag)", arg=f"sw-alert-{alert_id}")
    page.wait_for_function("() => document.title.startsWith('⚠')")
    playwright_expect(page.locator("body")).to_have_attribute("data-alarm", "1")
    playwright_expect(page.locator("#announce")).to_contain_text("危急")
    # It repeats while nobody acknowledges it, with its sound (WebAudio, unlocked by the login click).
    page.wait_for_function("tag => window.__notes.filter(n => n.tag === tag).length >= 3", arg=f"sw-alert-{alert_id}")
    assert int(page.get_attribute("body", "data-alarm-sounds") or 0) >= 2
    first = _notes(page, alert_id)[0]
    assert first["title"].startswith("危急 · ")

    # In the feed it is new, and it blinks (steady under reduced motion).
    page.click("#nav a[data-page=alerts]")
    row = page.locator(f"#alert-table tr[data-alert='{alert_id}']")
    playwright_expect(row).to_have_class(re.compile(r"\bunack\b"))
    blink = "el => getComputedStyle(el).animationName"
    assert row.locator("td").first.evaluate(blink) == "sw-blink"
    page.emulate_media(reduced_motion="reduce")
    assert row.locator("td").first.evaluate(blink) == "none"
    page.emulate_media(reduced_motion="no-preference")
    screenshot(page, "24-alarm-ringing")

    # Acknowledging stops it: notification closed, title back, no more repeats.
    row.locator("button[data-act=acknowledge]").click()
    playwright_expect(page.locator("body")).to_have_attribute("data-alarm", "0")
    playwright_expect(page.locator("body")).to_have_attribute("data-alarm-repeat", "off")
    playwright_expect(page).to_have_title(normal_title)
    assert _notes(page, alert_id)[-1]["closed"]
    heard = len(_notes(page, alert_id))

    # A trapped passenger rings as well; acknowledged elsewhere (through the API), it falls silent here too.
    elevator = next(e for e in site.registry.equipment
                    if e["category"] == "3000" and e["banner_code"].startswith("1502"))
    trapped = raise_alert(site, elevator["code"], trapped=True)
    page.wait_for_function("tag => window.__notes.some(n => n.tag === tag)", arg=f"sw-alert-{trapped}")
    assert _notes(page, trapped)[0]["title"].startswith("困人")
    page.wait_for_function("() => document.title.startsWith('⚠')")
    with httpx.Client(base_url=site.url) as api:
        token = api.post("/api/v1/auth/token", data={"username": user_with(site, "region_inspector", "150000"),
                                                     "password": PASSWORD}).raise_for_status().json()["access_token"]
        api.post(f"/api/v1/alerts/{trapped}/acknowledge", json={},
                 headers={"Authorization": f"Bearer {token}"}).raise_for_status()
    playwright_expect(page.locator("body")).to_have_attribute("data-alarm", "0")
    playwright_expect(page).to_have_title(normal_title)
    assert len(_notes(page, alert_id)) == heard  # the acknowledged critical never came back
