"""Trapped-passenger arrival deadlines (migration 025) on the real database, through the real API.

The unit must reach a trapped passenger within 30 min in a city's district and 1 h elsewhere (DOMAIN.md,
Elevators); the deadline is data per division, inherited banner → league → region, and shows on the
alert read models and the emergency console's endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from safewatch.db import one_row
from safewatch.registry.divisions import parse_divisions, shipped_divisions_text
from tests.integration.api.conftest import Registered
from tests.services import Caller

OPENED = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
INSERT_ALERT = """
INSERT INTO alerts (equipment_id, rule_key, severity, state, active, latched, division_code, league_code, message,
                    opened_at, updated_at)
SELECT id, %s, 'critical', 'active_unack', true, true, banner_code, %s, 'arrival deadline test', %s, %s
FROM equipment WHERE code = %s RETURNING id
"""
CLEAR_SETTINGS = "UPDATE divisions SET arrival_deadline_min = NULL WHERE code IN ('152500', '152522')"


@pytest.fixture(scope="module")
def alerts(register: Callable[[str, str], Registered], api_db: str) -> Iterator[dict[str, int]]:
    """Open alerts, each on an elevator of its own: trapped passengers in a city district (新城区), a league's
    banner (阿巴嘎旗, 锡林郭勒盟) and a city's banner (土默特左旗), and one other alert in the district."""
    places = {"district": ("150102", "150100"), "xilingol": ("152522", "152500"), "city_banner": ("150121", "150100")}
    ids: dict[str, int] = {}
    with psycopg.connect(api_db) as conn:
        for name, (banner, league) in places.items():
            code = register(banner, league).code
            ids[name] = one_row(conn.execute(INSERT_ALERT, ("event.passenger_trapped", league, OPENED, OPENED,
                                                            code)))[0]
        other = register("150102", "150100").code
        ids["not_trapped"] = one_row(conn.execute(INSERT_ALERT, ("event.door_open_fault", "150100", OPENED, OPENED,
                                                                 other)))[0]
    yield ids
    with psycopg.connect(api_db) as conn:
        conn.execute(CLEAR_SETTINGS)


def _deadline(client: TestClient, caller: Caller, alert_id: int) -> datetime | None:
    r = client.get(f"/api/v1/alerts/{alert_id}", headers=caller.headers)
    assert r.status_code == 200, r.text
    value = r.json()["arrival_deadline_at"]
    return None if value is None else datetime.fromisoformat(value)


def _emergency(client: TestClient, caller: Caller) -> dict[int, str | None]:
    r = client.get("/api/v1/dashboard/emergency", headers=caller.headers, params={"limit": 1000})
    assert r.status_code == 200, r.text
    return {a["id"]: a["arrival_deadline_at"] for a in r.json()["items"]}


def test_default_deadlines_30_min_in_city_districts_60_elsewhere(
        client: TestClient, as_user: Callable[[str, str], Caller], alerts: dict[str, int]) -> None:
    region = as_user("region_inspector", "150000")
    assert _deadline(client, region, alerts["district"]) == OPENED + timedelta(minutes=30)
    assert _deadline(client, region, alerts["xilingol"]) == OPENED + timedelta(minutes=60)
    assert _deadline(client, region, alerts["city_banner"]) == OPENED + timedelta(minutes=60)
    assert _deadline(client, region, alerts["not_trapped"]) is None
    # The list and the emergency console's endpoint carry the same field.
    listed = client.get("/api/v1/alerts", headers=region.headers, params={"rule": "event.passenger_trapped"}).json()
    by_id = {a["id"]: a["arrival_deadline_at"] for a in listed["items"]}
    assert datetime.fromisoformat(by_id[alerts["district"]]) == OPENED + timedelta(minutes=30)
    console = _emergency(client, region)
    xilingol = console[alerts["xilingol"]]
    assert xilingol is not None and datetime.fromisoformat(xilingol) == OPENED + timedelta(minutes=60)
    assert console[alerts["not_trapped"]] is None
    # Where each value comes from.
    district = client.get("/api/v1/divisions/150102/response", headers=region.headers).json()
    assert (district["arrival_deadline_min"], district["effective_arrival_deadline_min"],
            district["effective_from"]) == (30, 30, "150102")
    banner = client.get("/api/v1/divisions/152522/response", headers=region.headers).json()
    assert (banner["arrival_deadline_min"], banner["effective_arrival_deadline_min"],
            banner["effective_from"]) == (None, 60, "150000")


def test_put_changes_the_deadline_of_open_alerts_and_null_inherits_again(
        client: TestClient, as_user: Callable[[str, str], Caller], alerts: dict[str, int]) -> None:
    admin = as_user("administrator", "150000")
    r = client.put("/api/v1/divisions/152500/response", headers=admin.headers, json={"arrival_deadline_min": 45})
    assert r.status_code == 200, r.text
    assert (r.json()["arrival_deadline_min"], r.json()["updated_by"]) == (45, admin.username)
    assert _deadline(client, admin, alerts["xilingol"]) == OPENED + timedelta(minutes=45)  # the league's, inherited
    r = client.put("/api/v1/divisions/152522/response", headers=admin.headers, json={"arrival_deadline_min": 90})
    assert r.status_code == 200, r.text
    assert _deadline(client, admin, alerts["xilingol"]) == OPENED + timedelta(minutes=90)  # its own wins
    for code in ("152522", "152500"):
        r = client.put(f"/api/v1/divisions/{code}/response", headers=admin.headers, json={"arrival_deadline_min": None})
        assert r.status_code == 200, r.text
    assert r.json()["effective_from"] == "150000"
    assert _deadline(client, admin, alerts["xilingol"]) == OPENED + timedelta(minutes=60)
    assert _deadline(client, admin, alerts["district"]) == OPENED + timedelta(minutes=30)  # untouched


@pytest.mark.parametrize(("role", "division", "status"), [
    ("banner_inspector", "152522", 403), ("league_inspector", "152500", 403), ("emergency_responder", "150000", 403),
    ("registry_clerk", "150000", 403), ("administrator", "150200", 404), ("administrator", "640000", 404),
])
def test_put_refused_to_low_roles_and_foreign_jurisdictions(
        client: TestClient, as_user: Callable[[str, str], Caller], alerts: dict[str, int], role: str, division: str,
        status: int) -> None:
    caller = as_user(role, division)
    r = client.put("/api/v1/divisions/152522/response", headers=caller.headers, json={"arrival_deadline_min": 5})
    assert r.status_code == status, r.text
    region = as_user("region_inspector", "150000")
    assert _deadline(client, region, alerts["xilingol"]) == OPENED + timedelta(minutes=60)


@pytest.mark.parametrize(("code", "body"), [
    ("152522", {"arrival_deadline_min": 0}), ("152522", {"arrival_deadline_min": -30}),
    ("152522", {"arrival_deadline_min": 24 * 60 + 1}), ("152522", {"arrival_deadline_min": "soon"}),
    ("152522", {}), ("150000", {"arrival_deadline_min": None}),
])
def test_bad_values_are_422_naming_the_field(client: TestClient, as_user: Callable[[str, str], Caller],
                                             code: str, body: dict[str, object]) -> None:
    admin = as_user("administrator", "150000")
    r = client.put(f"/api/v1/divisions/{code}/response", headers=admin.headers, json=body)
    assert r.status_code == 422, r.text
    assert any(e["loc"][-1] == "arrival_deadline_min" for e in r.json()["detail"]), r.text
    assert client.get(f"/api/v1/divisions/{code}/response",
                      headers=admin.headers).json()["effective_arrival_deadline_min"] == 60


def test_shipped_defaults_are_the_city_districts_and_the_region(api_db: str) -> None:
    """On load, exactly the 市辖区 of Inner Mongolia's prefecture-level cities (1501xx–1509xx) get 30 min."""
    shipped = parse_divisions(shipped_divisions_text())
    districts = {d.code for d in shipped if d.level == "banner" and d.name.endswith("区")
                 and d.league_code is not None and "150100" <= d.league_code <= "150900"}
    with psycopg.connect(api_db) as conn:
        rows = conn.execute("SELECT code, arrival_deadline_min FROM divisions WHERE code LIKE '15%' "
                            "AND arrival_deadline_min IS NOT NULL").fetchall()
    assert dict(rows) == {"150000": 60} | dict.fromkeys(districts, 30)
    assert {"150102", "150602", "150902"} <= districts and not {"152201", "152502", "152921"} & districts
