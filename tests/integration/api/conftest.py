"""Fixtures for the registry API tests: a database of their own holding two provinces, and callers per role.

Inner Mongolia (the shipped divisions) holds the registry under test; a few Ningxia (640000) rows give
region-level callers a foreign jurisdiction. The database is this package's own so those extra
divisions never reach other tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from psycopg_pool import ConnectionPool

from api.app import create_app
from safewatch.db import open_pool
from safewatch.registry.codes import uscc_check_char
from safewatch.registry.divisions import load_divisions
from safewatch.settings import ApiSettings, DbSettings, Settings
from tests.services import Caller, create_database, drop_database, process_url, stored_callers

NINGXIA = Path(__file__).parent / "ningxia_divisions.csv"
SECRET = "test-secret-for-the-registry-api-tests"


@pytest.fixture(scope="session")
def api_db() -> Iterator[str]:
    url = create_database(storage="plain")
    with psycopg.connect(url) as conn:
        load_divisions(conn, NINGXIA)
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def api_pool(api_db: str) -> Iterator[ConnectionPool]:
    # As production runs it: the API's own database role (safewatch/schema/roles.py), not the owner.
    pool = open_pool(process_url(api_db, "api"), min_size=1, max_size=4)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def app(api_db: str, api_pool: ConnectionPool):
    settings = Settings(db=DbSettings(url=process_url(api_db, "api")),
                        api=ApiSettings(jwt_secret=SECRET, max_body_bytes=256 * 1024))
    return create_app(settings, registry=CollectorRegistry(), pool=api_pool)


@pytest.fixture(scope="session")
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def as_user(api_db: str) -> Callable[[str, str], Caller]:
    """``as_user(role, division)``: a stored person of that role bound to that division, with a token."""
    return stored_callers(api_db, SECRET)


def make_uscc(division: str, serial: int) -> str:
    """A valid USCC (GB 32100 check character) for a unit in ``division``."""
    body = f"91{division}{serial:09d}"
    return body + uscc_check_char(body)


_serial = iter(range(1, 10**6))


def next_serial() -> int:
    return next(_serial)


@dataclass(frozen=True)
class Registered:
    """One unit, gateway and elevator registered through the API in one banner."""

    banner: str
    league: str
    uscc: str
    unit_name: str
    gateway_id: str
    code: str
    registration_no: str


def elevator_body(code: str, uscc: str, banner: str, gateway_id: str | None, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "code": code, "unit_uscc": uscc, "banner_code": banner, "gateway_id": gateway_id,
        "registration_no": f"梯11蒙A{int(code[-5:]):05d}(24)", "lat": 40.8, "lon": 111.7, "address": "测试路1号",
        "manufacturer": "测试电梯有限公司", "model": "T-1", "manufactured_on": "2019-05-01",
        "commissioned_on": "2019-09-01", "rated": {"rated_speed": 1.75, "rated_load": 1000, "floors": 18},
        "last_inspection_on": "2026-03-01", "next_inspection_on": "2027-03-01", "rescue_code": "123456"}
    body.update(extra)
    return body


@pytest.fixture(scope="session")
def register(client: TestClient, as_user: Callable[[str, str], Caller]) -> Callable[[str, str], Registered]:
    """``register(banner, league)``: a unit, a gateway and an elevator in that banner, made by a region clerk."""
    clerk = as_user("registry_clerk", "150000")

    def make(banner: str, league: str) -> Registered:
        n = next_serial()
        uscc = make_uscc(banner, n)
        unit_name = f"测试使用单位{n}号"
        r = client.post("/api/v1/units", headers=clerk.headers,
                        json={"uscc": uscc, "name": unit_name, "division_code": banner, "phone": "0471-1234567"})
        assert r.status_code == 201, r.text
        gateway_id = f"gw-t-{n}"
        r = client.post("/api/v1/gateways", headers=clerk.headers, json={"id": gateway_id, "league_code": league})
        assert r.status_code == 201, r.text
        code = f"3110150{n % 100:02d}2019{n:05d}"
        body = elevator_body(code, uscc, banner, gateway_id)
        r = client.post("/api/v1/equipment", headers=clerk.headers, json=body)
        assert r.status_code == 201, r.text
        return Registered(banner, league, uscc, unit_name, gateway_id, code, str(body["registration_no"]))

    return make
