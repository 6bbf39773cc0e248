"""The feed cannot hide danger (issue 25): server-side order and paging with totals, and two worlds kept apart.

Alerts are seeded in SQL in one banner (东胜区 150602) on elevators registered through the API; the feed is
walked page by page and compared with the order computed here: most severe, then unacknowledged, then newest.
Supervision matters (overdue inspection, registration) appear only in their worklist, never in the hazard
feed nor on the emergency console, even when escalated.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from safewatch.db import one_row
from tests.integration.api.conftest import Registered
from tests.services import Caller

BANNER, LEAGUE = "150602", "150600"
SEVERITIES = ("critical", "major", "minor", "warning")
MIX = {"critical": 7, "major": 40, "minor": 60, "warning": 143}  # 250 hazards
NOW = datetime.now(UTC).replace(microsecond=0)
INSERT_ALERT = """
INSERT INTO alerts (equipment_id, rule_key, kind, severity, state, active, latched, level, division_code, league_code,
                    message, opened_at, updated_at)
SELECT id, %(rule_key)s, %(kind)s, %(severity)s, %(state)s, true, false, %(level)s, banner_code, %(league)s,
       'feed test', %(opened_at)s, %(opened_at)s
FROM equipment WHERE code = %(code)s RETURNING id
"""


def _seed(conn: psycopg.Connection, code: str, **row: Any) -> int:
    return int(one_row(conn.execute(INSERT_ALERT, {"league": LEAGUE, "code": code, "level": "banner",
                                                   "kind": "threshold", **row}))[0])


@pytest.fixture(scope="module")
def seeded(register: Callable[[str, str], Registered], api_db: str) -> Iterator[dict[str, Any]]:
    rnd = random.Random(25)
    hazard_eq = register(BANNER, LEAGUE).code
    overdue_eq, unregistered_eq = register(BANNER, LEAGUE).code, register(BANNER, LEAGUE).code
    rows: list[dict[str, Any]] = []
    with psycopg.connect(api_db) as conn:
        n = 0
        for severity, count in MIX.items():
            for _ in range(count):
                n += 1
                state = rnd.choice(("active_unack", "active_ack", "returned_unack"))
                row: dict[str, Any] = {"severity": severity, "state": state,
                                       "opened_at": NOW - timedelta(seconds=rnd.randrange(1, 7 * 86400)),
                                       "rule_key": f"feed.test.{n}"}
                row["id"] = _seed(conn, hazard_eq, **row)
                rows.append(row)
        # Paperwork: an overdue inspection (even escalated to the league) and a missing registration.
        conn.execute("UPDATE equipment SET next_inspection_on = %s WHERE code = %s", (date(2026, 1, 10), overdue_eq))
        conn.execute("UPDATE equipment SET commissioned_on = %s WHERE code = %s", (date(2025, 6, 1), unregistered_eq))
        overdue = _seed(conn, overdue_eq, rule_key="inspection.overdue", kind="inspection", severity="major",
                        state="active_unack", level="league", opened_at=NOW - timedelta(days=300))
        unregistered = _seed(conn, unregistered_eq, rule_key="registration.expired", kind="inspection",
                             severity="major", state="active_ack", opened_at=NOW - timedelta(days=100))
    yield {"hazards": rows, "overdue": overdue, "unregistered": unregistered}
    with psycopg.connect(api_db) as conn:
        conn.execute("DELETE FROM alerts WHERE id = ANY(%s)", ([r["id"] for r in rows] + [overdue, unregistered],))


def _walk(client: TestClient, caller: Caller, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a list, following next_cursor; each page's body (items and totals)."""
    pages, cursor = [], None
    while True:
        r = client.get(path, headers=caller.headers, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        pages.append(r.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            return pages


def _priority(row: dict[str, Any]) -> tuple[Any, ...]:
    acked = row["state"] not in ("active_unack", "returned_unack")
    return SEVERITIES.index(row["severity"]), acked, -row["opened_at"].timestamp(), -row["id"]


def test_the_feed_is_sorted_and_paged_on_the_server_with_the_totals_of_the_whole_list(
        client: TestClient, as_user: Callable[[str, str], Caller], seeded: dict[str, Any]) -> None:
    inspector = as_user("banner_inspector", BANNER)
    hazards = seeded["hazards"]
    pages = _walk(client, inspector, "/api/v1/alerts", open="true", world="hazard", limit=37)
    listed = [a["id"] for p in pages for a in p["items"]]
    assert listed == [r["id"] for r in sorted(hazards, key=_priority)]
    # Every page says what the whole list holds.
    unack = sum(r["state"] != "active_ack" for r in hazards)
    for p in pages:
        assert (p["total"], p["unacknowledged"], p["totals"]) == (len(hazards), unack, MIX)
    first = pages[0]["items"]
    assert [a["severity"] for a in first[:MIX["critical"]]] == ["critical"] * MIX["critical"]
    assert all(a["world"] == "hazard" for p in pages for a in p["items"])

    # Filtered to warnings: the page holds warnings, the totals still count the criticals.
    warnings = client.get("/api/v1/alerts", headers=inspector.headers,
                          params={"open": "true", "world": "hazard", "severity": "warning", "limit": 10}).json()
    assert warnings["total"] == MIX["warning"] and warnings["totals"]["critical"] == MIX["critical"]
    assert {a["severity"] for a in warnings["items"]} == {"warning"}

    # Newest first, on request, paged just as completely.
    by_time = _walk(client, inspector, "/api/v1/alerts", open="true", world="hazard", sort="time", limit=100)
    assert [a["id"] for p in by_time for a in p["items"]] == [
        r["id"] for r in sorted(hazards, key=lambda r: (-r["opened_at"].timestamp(), -r["id"]))]

    # A cursor belongs to its order.
    r = client.get("/api/v1/alerts", headers=inspector.headers,
                   params={"open": "true", "sort": "time", "cursor": pages[0]["next_cursor"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_supervision_matters_go_to_their_worklist_not_to_the_feed_or_the_console(
        client: TestClient, as_user: Callable[[str, str], Caller], seeded: dict[str, Any]) -> None:
    league = as_user("league_inspector", LEAGUE)
    paperwork = {seeded["overdue"], seeded["unregistered"]}
    feed = _walk(client, league, "/api/v1/alerts", open="true", world="hazard", limit=1000)
    assert not paperwork & {a["id"] for p in feed for a in p["items"]}

    work = client.get("/api/v1/alerts/supervision", headers=league.headers, params={"division": BANNER}).json()
    # Longest overdue first: unregistered since 2025-07-01, then uninspected since 2026-01-10.
    assert [a["id"] for a in work["items"]] == [seeded["unregistered"], seeded["overdue"]]
    unregistered, overdue = work["items"]
    assert overdue["due_on"] == "2026-01-10" and overdue["world"] == "supervision"
    assert overdue["days_overdue"] == (datetime.now(UTC) + timedelta(hours=8)).date().toordinal() - date(
        2026, 1, 10).toordinal()
    assert unregistered["due_on"] == "2025-07-01"  # 30 days after entering service (TSG 08)
    assert work["total"] == 2
    assert work["by_division"] == [{"division_code": BANNER, "open": 2, "unacknowledged": 1,
                                    "oldest_due_on": "2025-07-01"}]
    # Paged on its own key.
    one = client.get("/api/v1/alerts/supervision", headers=league.headers, params={"division": BANNER, "limit": 1})
    rest = client.get("/api/v1/alerts/supervision", headers=league.headers,
                      params={"division": BANNER, "limit": 1, "cursor": one.json()["next_cursor"]})
    assert [a["id"] for a in one.json()["items"] + rest.json()["items"]] == [seeded["unregistered"],
                                                                               seeded["overdue"]]

    # The console: every critical hazard of the banner, paged, and none of the paperwork (though escalated).
    console = _walk(client, league, "/api/v1/dashboard/emergency", limit=3)
    ids = [a["id"] for p in console for a in p["items"]]
    assert not paperwork & set(ids)
    criticals = [r for r in seeded["hazards"] if r["severity"] == "critical"]
    assert {r["id"] for r in criticals} <= set(ids)
    assert console[0]["total"] == len(ids) and console[0]["totals"]["critical"] >= len(criticals)
    ours = [i for i in ids if i in {r["id"] for r in criticals}]
    assert ours == [r["id"] for r in sorted(criticals, key=lambda r: (r["state"] == "active_ack", r["opened_at"]))]
