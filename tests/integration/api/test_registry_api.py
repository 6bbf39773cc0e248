"""The registry API against the real database: validation, audit trail, listing, search, summary, scoping."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from fastapi.testclient import TestClient

from safewatch.db import one_row
from tests.integration.api.conftest import Caller, Registered, elevator_body, make_uscc, next_serial

Register = Callable[[str, str], Registered]
AsUser = Callable[[str, str], Caller]
COUNT_EQUIPMENT = "SELECT count(*) FROM equipment WHERE code = %s"
COUNT_AUDIT = "SELECT count(*) FROM equipment_audit a JOIN equipment e ON e.id = a.equipment_id WHERE e.code = %s"


def fresh_code(prefix: str = "3110150") -> str:
    n = next_serial()
    return f"{prefix}{n % 100:02d}2020{n:05d}"


def detail(r) -> list[tuple[tuple[object, ...], str]]:
    return [(tuple(d["loc"]), d["msg"]) for d in r.json()["detail"]]


@pytest.mark.parametrize(("change", "status", "loc", "why"), [
    ({"code": "3110-1512320150000"}, 422, ("body", "code"), "neither"),  # malformed code
    ({"code": "411015123201500001"}, 422, ("body", "code"), "category 4000"),  # not served
    ({"unit_uscc": "91110000600037341M"}, 422, ("body", "unit_uscc"), "check character"),  # bad check character
    ({"banner_code": "159999"}, 422, ("body", "banner_code"), "not in the registry"),  # unknown division
    ({"banner_code": "150100"}, 422, ("body", "banner_code"), "is a league"),  # not a banner
    ({"rated": {"rated_speed": "fast", "rated_load": 1000}}, 422, ("body", "rated", "rated_speed"), "number"),
    ({"rated": {"rated_speed": 1.0}}, 422, ("body", "rated", "rated_load"), "required"),
    ({"lat": "north"}, 422, ("body", "lat"), "number"),  # wrong type
    ({"next_inspection_on": "2020-01-01"}, 422, ("body", "next_inspection_on"), "before last_inspection_on"),
    ({"status": "lost"}, 422, ("body", "status"), "Input should be"),
    ({"gateway_id": "gw-nowhere"}, 422, ("body", "gateway_id"), "no live gateway"),
    ({"extra_field": 1}, 422, ("body", "extra_field"), "Extra inputs"),
])
def test_bad_input_names_the_field_and_writes_nothing(client: TestClient, register: Register, as_user: AsUser,
                                                      api_db: str, change: dict[str, object], status: int,
                                                      loc: tuple[object, ...], why: str) -> None:
    reg = register("150102", "150100")
    clerk = as_user("registry_clerk", "150100")
    body = {**elevator_body(fresh_code(), reg.uscc, reg.banner, reg.gateway_id), **change}
    r = client.post("/api/v1/equipment", json=body, headers=clerk.headers)
    assert r.status_code == status, r.text
    assert any(got == loc and why in msg for got, msg in detail(r)), r.json()
    with psycopg.connect(api_db) as conn:
        assert one_row(conn.execute(COUNT_EQUIPMENT, (str(body["code"]).upper(),)))[0] == 0


def test_duplicate_code_is_a_conflict(client: TestClient, register: Register, as_user: AsUser, api_db: str) -> None:
    reg = register("150102", "150100")
    clerk = as_user("registry_clerk", "150100")
    r = client.post("/api/v1/equipment", json=elevator_body(reg.code, reg.uscc, reg.banner, None),
                    headers=clerk.headers)
    assert r.status_code == 409
    assert detail(r) == [(("body", "code"), f"equipment {reg.code} is already registered")]
    with psycopg.connect(api_db) as conn:
        assert one_row(conn.execute(COUNT_AUDIT, (reg.code,)))[0] == 1  # only its creation


def test_malformed_json_and_oversized_bodies(client: TestClient, as_user: AsUser) -> None:
    clerk = as_user("registry_clerk", "150100")
    r = client.post("/api/v1/equipment", content=b'{"code": ', headers={**clerk.headers,
                                                                          "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = client.post("/api/v1/equipment", content=b"{" + b" " * (300 * 1024) + b"}",
                    headers={**clerk.headers, "content-type": "application/json"})
    assert r.status_code == 413 and "over" in r.json()["detail"][0]["msg"]
    r = client.post("/api/v1/units", json={"uscc": "91110000600037341L", "name": "x" * 201, "division_code": "150102"},
                    headers=clerk.headers)
    assert r.status_code == 422 and detail(r)[0][0] == ("body", "name")


def test_audit_trail_records_who_when_what(client: TestClient, register: Register, as_user: AsUser) -> None:
    reg = register("150103", "150100")
    clerk = as_user("registry_clerk", "150100")
    r = client.patch(f"/api/v1/equipment/{reg.code}", headers=clerk.headers,
                     json={"status": "suspended", "next_inspection_on": "2027-06-01", "reason": "停用检修"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["next_inspection_on"]) == ("suspended", "2027-06-01")
    # A change that breaks a rule writes nothing, audit included.
    r = client.patch(f"/api/v1/equipment/{reg.code}", headers=clerk.headers, json={"rated": {"rated_speed": 1.0}})
    assert r.status_code == 422 and detail(r)[0][0] == ("body", "rated", "rated_load")
    r = client.post(f"/api/v1/equipment/{reg.code}/retire", headers=clerk.headers,
                    json={"status": "scrapped", "reason": "报废"})
    assert r.status_code == 200 and r.json()["retired_at"] is not None
    r = client.patch(f"/api/v1/equipment/{reg.code}", headers=clerk.headers, json={"status": "in_use"})
    assert r.status_code == 409
    trail = client.get(f"/api/v1/equipment/{reg.code}/audit", headers=clerk.headers).json()
    assert [(a["action"], a["actor"]) for a in trail] == [
        ("create", "registry_clerk-150000"), ("update", clerk.username), ("retire", clerk.username)]
    assert trail[1]["changes"] == {"status": ["in_use", "suspended"],
                                   "next_inspection_on": ["2027-03-01", "2027-06-01"], "reason": "停用检修"}
    assert trail[2]["changes"] == {"status": ["suspended", "scrapped"], "reason": "报废"}
    assert trail[0]["at"] <= trail[1]["at"] <= trail[2]["at"]


def test_gateway_of_another_league_cannot_be_bound(client: TestClient, register: Register, as_user: AsUser) -> None:
    hohhot, baotou = register("150102", "150100"), register("150202", "150200")
    clerk = as_user("registry_clerk", "150000")
    r = client.patch(f"/api/v1/equipment/{hohhot.code}", headers=clerk.headers, json={"gateway_id": baotou.gateway_id})
    assert r.status_code == 422 and "reports under league 150200" in detail(r)[0][1]


def test_list_filters_sort_and_cursor(client: TestClient, register: Register, as_user: AsUser) -> None:
    regs = [register("150124", "150100") for _ in range(5)]
    league = as_user("league_inspector", "150100")
    clerk = as_user("registry_clerk", "150100")
    client.patch(f"/api/v1/equipment/{regs[0].code}", headers=clerk.headers, json={"next_inspection_on": "2026-04-01"})
    client.patch(f"/api/v1/equipment/{regs[1].code}", headers=clerk.headers, json={"status": "suspended"})
    seen: list[str] = []
    cursor = None
    while True:
        params = {"division": "150124", "sort": "-next_inspection_on", "limit": 2,
                  **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/equipment", params=params, headers=league.headers).json()
        seen += [e["code"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(r.code for r in regs) and len(seen) == len(set(seen))
    assert seen[-1] == regs[0].code  # the earliest next inspection last when descending
    due = client.get("/api/v1/equipment", params={"division": "150124", "inspection_due_before": "2026-05-01"},
                     headers=league.headers).json()["items"]
    assert [e["code"] for e in due] == [regs[0].code]
    suspended = client.get("/api/v1/equipment", params={"division": "150124", "status": "suspended"},
                           headers=league.headers).json()["items"]
    assert [e["code"] for e in suspended] == [regs[1].code]
    by_unit = client.get("/api/v1/equipment", params={"unit": regs[2].uscc}, headers=league.headers).json()["items"]
    assert [e["code"] for e in by_unit] == [regs[2].code]
    offline = client.get("/api/v1/equipment", params={"division": "150124", "online": "false"},
                         headers=league.headers).json()["items"]
    assert len(offline) == 5  # no gateway status yet: none online
    bad = client.get("/api/v1/equipment", params={"sort": "code", "cursor": page.get("next_cursor") or "bm90LWl0"},
                     headers=league.headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_online_filter_follows_gateway_status(client: TestClient, register: Register, as_user: AsUser,
                                              api_db: str) -> None:
    reg = register("150125", "150100")
    with psycopg.connect(api_db) as conn:
        conn.execute("INSERT INTO gateway_status (gateway_id, state, since) VALUES (%s, 'online', now())",
                     (reg.gateway_id,))
    league = as_user("league_inspector", "150100")
    online = client.get("/api/v1/equipment", params={"division": "150125", "online": "true"},
                        headers=league.headers).json()["items"]
    assert [e["code"] for e in online] == [reg.code] and online[0]["online"] is True


def test_search_by_code_registration_and_unit_name(client: TestClient, register: Register, as_user: AsUser) -> None:
    reg = register("150121", "150100")
    league = as_user("league_inspector", "150100")
    for q in (reg.code[:12], reg.registration_no[:9], reg.unit_name[2:]):
        hits = client.get("/api/v1/equipment/search", params={"q": q}, headers=league.headers).json()
        assert reg.code in [h["code"] for h in hits], q
    foreign = as_user("league_inspector", "150200")
    hits = client.get("/api/v1/equipment/search", params={"q": reg.code}, headers=foreign.headers).json()
    assert hits == []


def test_summary_rolls_up_every_level(client: TestClient, register: Register, as_user: AsUser) -> None:
    register("150122", "150100")
    region = as_user("region_inspector", "150000")
    rows = {r["code"]: r for r in client.get("/api/v1/equipment/summary", headers=region.headers).json()}
    assert rows["150000"]["level"] == "region" and len(rows) == 116
    leagues = [r for r in rows.values() if r["level"] == "league"]
    assert rows["150000"]["total"] == sum(r["total"] for r in leagues)
    assert rows["150100"]["total"] == sum(r["total"] for r in rows.values() if r["parent_code"] == "150100")
    assert rows["150122"]["elevators"] >= 1
    banner = as_user("banner_inspector", "150122")
    mine = client.get("/api/v1/equipment/summary", headers=banner.headers).json()
    assert [r["code"] for r in mine] == ["150122"]
    # Asking about the league above shows only the part of it within the banner's jurisdiction.
    above = client.get("/api/v1/equipment/summary", params={"division": "150100"}, headers=banner.headers).json()
    assert [r["code"] for r in above] == ["150122"]


def test_units_gateways_and_users_lifecycle(client: TestClient, as_user: AsUser, api_db: str) -> None:
    clerk = as_user("registry_clerk", "150100")
    uscc = make_uscc("150104", next_serial())
    r = client.post("/api/v1/units", headers=clerk.headers, json={"uscc": uscc, "name": "玉泉测试单位",
                                                                  "division_code": "150104"})
    assert r.status_code == 201
    assert client.post("/api/v1/units", headers=clerk.headers,
                       json={"uscc": uscc, "name": "again", "division_code": "150104"}).status_code == 409
    assert client.post("/api/v1/units", headers=clerk.headers, json={
        "uscc": make_uscc("150202", next_serial()), "name": "包头", "division_code": "150202"}).status_code == 403
    r = client.patch(f"/api/v1/units/{uscc}", headers=clerk.headers, json={"safety_manager": "李四"})
    assert r.json()["safety_manager"] == "李四"
    retired = client.post(f"/api/v1/units/{uscc}/retire", headers=clerk.headers, json={"reason": "注销"})
    assert retired.status_code == 200
    gateway_id = f"gw-life-{next_serial()}"
    r = client.post("/api/v1/gateways", headers=clerk.headers, json={"id": gateway_id, "league_code": "150100"})
    assert r.status_code == 201
    first = r.json()["mqtt_password"]
    assert r.json()["gateway"]["topic_prefix"] == f"se/v1/150100/{gateway_id}/#"
    assert client.post("/api/v1/gateways", headers=clerk.headers,
                       json={"id": "gw-b", "league_code": "150200"}).status_code == 403
    assert client.post("/api/v1/gateways", headers=clerk.headers,
                       json={"id": "gw-c", "league_code": "150102"}).status_code == 422  # a banner, not a league
    second = client.post(f"/api/v1/gateways/{gateway_id}/credentials", headers=clerk.headers).json()["mqtt_password"]
    assert first != second
    with psycopg.connect(api_db) as conn:
        stored = one_row(conn.execute("SELECT password_hash FROM gateways WHERE id = %s", (gateway_id,)))[0]
        trail = [r[0] for r in conn.execute(
            "SELECT action FROM registry_audit WHERE key IN (%s, %s) ORDER BY id", (uscc, gateway_id))]
    from safewatch.registry.broker import verify_mosquitto_hash

    assert verify_mosquitto_hash(stored, second) and not verify_mosquitto_hash(stored, first)
    assert trail == ["create", "update", "retire", "create", "rotate_credentials"]
    admin = as_user("administrator", "150100")
    r = client.post("/api/v1/users", headers=admin.headers, json={
        "username": "xc-inspector", "password": "correct horse battery", "role": "banner_inspector",
        "division_code": "150100"})
    assert r.status_code == 422 and "bound to a banner" in detail(r)[0][1]
    r = client.post("/api/v1/users", headers=admin.headers, json={
        "username": "xc-inspector", "password": "correct horse battery", "role": "banner_inspector",
        "division_code": "150102"})
    assert r.status_code == 201
    login = client.post("/api/v1/auth/token", data={"username": "xc-inspector", "password": "correct horse battery"})
    assert login.status_code == 200
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}).json()
    assert (me["role"], me["division_code"]) == ("banner_inspector", "150102")
    assert client.post("/api/v1/users/xc-inspector/retire", headers=admin.headers,
                       json={"reason": "调离"}).status_code == 200
    assert client.post("/api/v1/auth/token", data={"username": "xc-inspector",
                                                   "password": "correct horse battery"}).status_code == 401
