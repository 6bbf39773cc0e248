"""Fixtures of the alert tests: a database of their own (plain PostgreSQL), a small registry, the API, callers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from alerts.store import EquipmentInfo, load_equipment
from api.app import create_app
from safewatch.db import open_pool
from safewatch.registry.divisions import parse_divisions, shipped_divisions_text
from safewatch.registry.seed import DemoRegistry, demo_registry, insert_registry
from safewatch.settings import ApiSettings, DbSettings, Settings
from tests.services import Caller, create_database, drop_database, process_url, stored_callers

SECRET = "test-secret-for-the-alert-api-tests"


@pytest.fixture(scope="session")
def alerts_db() -> Iterator[str]:
    url = create_database(storage="plain")
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def alerts_registry(alerts_db: str) -> DemoRegistry:
    """240 equipment over every banner (two per banner, a few per gateway)."""
    registry = demo_registry(parse_divisions(shipped_divisions_text()), 240, seed=42, gateway_prefix="alt",
                             serial_start=900_000)
    with psycopg.connect(alerts_db) as conn:
        insert_registry(conn, registry)
    return registry


@pytest.fixture(scope="session")
def equipment_infos(alerts_db: str, alerts_registry: DemoRegistry) -> dict[str, EquipmentInfo]:
    with psycopg.connect(alerts_db) as conn:
        return {i.code: i for i in load_equipment(conn, [])}


@pytest.fixture(scope="session")
def api_client(alerts_db: str) -> Iterator[TestClient]:
    api_url = process_url(alerts_db, "api")  # the API's own database role, as in production
    pool = open_pool(api_url, min_size=1, max_size=4)
    settings = Settings(db=DbSettings(url=api_url), api=ApiSettings(jwt_secret=SECRET))
    with TestClient(create_app(settings, registry=CollectorRegistry(), pool=pool)) as c:
        yield c
    pool.close()


@pytest.fixture(scope="session")
def as_user(alerts_db: str) -> Callable[[str, str], Caller]:
    """``as_user(role, division)``: a stored person with a token."""
    return stored_callers(alerts_db, SECRET)


def first_of(infos: dict[str, EquipmentInfo], category: str, *, skip: int = 0) -> EquipmentInfo:
    return [i for i in infos.values() if i.category == category][skip]


def row(conn: psycopg.Connection, sql: str, *args: Any) -> tuple[Any, ...]:
    found = conn.execute(sql, args).fetchone()
    assert found is not None, sql
    return found
