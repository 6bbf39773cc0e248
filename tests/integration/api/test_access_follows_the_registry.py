"""A person's access follows the registry at once: tokens end with a change of who they are.

Retiring, demoting, moving or re-passwording a person, or their logging out, ends every token they
hold within a second; a token for no active person is refused; the last active administrator stays;
guessing passwords is throttled.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import jwt
import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from psycopg_pool import ConnectionPool

from api.app import create_app
from api.auth.revocation import TTL_S
from api.auth.tokens import ALGORITHM
from api.auth.users import token_for, upsert_user
from safewatch.settings import ApiSettings, DbSettings, Settings
from tests.integration.api.conftest import SECRET
from tests.services import create_database, drop_database
from tests.waiting import wait_until

PASSWORD = "a-long-test-password"


@pytest.fixture
def client(api_db: str, api_pool: ConnectionPool) -> Iterator[TestClient]:
    """An API of this test's own (its login throttle and identity cache start empty)."""
    settings = Settings(db=DbSettings(url=api_db), api=ApiSettings(jwt_secret=SECRET))
    with TestClient(create_app(settings, registry=CollectorRegistry(), pool=api_pool)) as c:
        yield c


def _person(api_db: str, role: str, division: str) -> tuple[str, dict[str, str]]:
    username = f"p{uuid.uuid4().hex[:10]}"
    with psycopg.connect(api_db) as conn:
        user_id = upsert_user(conn, username, PASSWORD, role, division)
        token = token_for(conn, user_id, secret=SECRET, ttl_s=3600)
    return username, {"Authorization": f"Bearer {token}"}


def _refused_soon(client: TestClient, headers: dict[str, str], path: str = "/api/v1/me") -> None:
    started = time.monotonic()
    wait_until(lambda: client.get(path, headers=headers).status_code, lambda s: s == 401, timeout=10,
               what=f"{path} refused")
    assert time.monotonic() - started <= TTL_S + 2  # the cache's second, with room for a busy machine


def test_a_retired_persons_token_stops_working(client: TestClient, api_db: str) -> None:
    _, admin_h = _person(api_db, "administrator", "150000")
    name, headers = _person(api_db, "league_inspector", "150100")
    assert client.get("/api/v1/alerts", headers=headers).status_code == 200
    assert client.post(f"/api/v1/users/{name}/retire", json={"reason": "left the service"},
                       headers=admin_h).status_code == 200
    _refused_soon(client, headers, "/api/v1/alerts")
    assert "log in again" in client.get("/api/v1/me", headers=headers).json()["detail"][0]["msg"]


def test_a_demoted_administrator_can_no_longer_create_administrators(client: TestClient, api_db: str) -> None:
    _, admin_h = _person(api_db, "administrator", "150000")
    demoted, demoted_h = _person(api_db, "administrator", "150000")
    assert client.get("/api/v1/users", headers=demoted_h).status_code == 200
    changed = client.patch(f"/api/v1/users/{demoted}", json={"role": "region_inspector"}, headers=admin_h)
    assert changed.status_code == 200, changed.text
    _refused_soon(client, demoted_h)
    made = client.post("/api/v1/users", headers=demoted_h, json={
        "username": f"x{uuid.uuid4().hex[:8]}", "password": PASSWORD, "role": "administrator",
        "division_code": "150000"})
    assert made.status_code == 401


def test_a_moved_inspector_no_longer_reaches_the_old_league(client: TestClient, api_db: str) -> None:
    _, admin_h = _person(api_db, "administrator", "150000")
    moved, moved_h = _person(api_db, "league_inspector", "150100")
    assert client.patch(f"/api/v1/users/{moved}", json={"division_code": "150200"},
                        headers=admin_h).status_code == 200
    _refused_soon(client, moved_h, "/api/v1/alerts")
    fresh = client.post("/api/v1/auth/token", data={"username": moved, "password": PASSWORD})
    assert fresh.status_code == 200
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {fresh.json()['access_token']}"}).json()
    assert me["division_code"] == "150200"


def test_logout_ends_the_token(client: TestClient, api_db: str) -> None:
    _, headers = _person(api_db, "banner_inspector", "150102")
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_a_token_for_no_stored_person_is_refused_even_when_signed(client: TestClient) -> None:
    forged = jwt.encode({"sub": "987654321", "name": "ghost", "role": "administrator", "div": "150000",
                         "ver": 0, "exp": int(time.time()) + 600}, SECRET, algorithm=ALGORITHM)
    assert client.get("/api/v1/users", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


@pytest.fixture
def own_db() -> Iterator[str]:
    """A database of this test's own: it counts every active administrator in it."""
    url = create_database(storage="plain")
    yield url
    drop_database(url)


def test_the_last_active_administrator_cannot_be_demoted(own_db: str) -> None:
    settings = Settings(db=DbSettings(url=own_db), api=ApiSettings(jwt_secret=SECRET))
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        only, only_h = _person(own_db, "administrator", "150000")
        refused = client.patch(f"/api/v1/users/{only}", json={"role": "region_inspector"}, headers=only_h)
        assert refused.status_code == 409
        assert "last active administrator" in refused.text
        second, _ = _person(own_db, "administrator", "150000")
        assert client.patch(f"/api/v1/users/{only}", json={"role": "region_inspector"},
                            headers=only_h).status_code == 200
    with psycopg.connect(own_db) as conn:
        active = conn.execute("SELECT username FROM users WHERE role = 'administrator' AND retired_at IS NULL"
                              ).fetchall()
    assert [r[0] for r in active] == [second]


def test_password_guessing_is_throttled(client: TestClient, api_db: str) -> None:
    name, _ = _person(api_db, "banner_inspector", "150102")
    for _ in range(5):
        assert client.post("/api/v1/auth/token", data={"username": name, "password": "guess"}).status_code == 401
    blocked = client.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
