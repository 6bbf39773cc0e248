"""Fixtures over the real PostgreSQL and MQTT broker (a pytest plugin loaded by tests/conftest.py).

- ``pg_url``: a database created fresh for this test run, migrated once, dropped at the end.
- ``conn``: a connection whose work is rolled back after the test.
- ``fleet``: a registry fleet of its own per test (unique gateways and codes), committed.
- ``settings``: Settings pointing at both, with names unique to the test.
- ``running``: start real workers (ingest / alerts) in threads, stopped and joined after the test.
- ``stored_callers``: API callers (a stored person with a token) per role and division, for API fixtures.
- ``process_url``: the URL a process's own login role (safewatch/schema/roles.py) uses for a test database.
"""

from __future__ import annotations

import itertools
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from api.auth.users import token_for, upsert_user
from bench.ingest.instances import MOSQUITTO, PrivateBroker
from safewatch.db import one_row, with_database
from safewatch.registry.divisions import load_divisions, parse_divisions, shipped_divisions_text
from safewatch.registry.seed import DemoRegistry, demo_registry, insert_registry
from safewatch.schema.migrate import migrate
from safewatch.schema.roles import PROCESSES, login_role, provision_login_roles
from safewatch.settings import AlertSettings, DbSettings, IngestSettings, MqttSettings, Settings

TEST_DB_URL = os.environ.get("SAFEWATCH_TEST_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_MQTT_URL = os.environ.get("SAFEWATCH_TEST_MQTT_URL")

_serials = itertools.count(0, 5000)

TIMESCALE_AVAILABLE = "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
NO_TIMESCALE = "TimescaleDB is not installed and preloaded on this PostgreSQL; the plain path is tested"


def timescale_available() -> bool:
    """Whether a database here can use the TimescaleDB path (extension installed and preloaded)."""
    with psycopg.connect(TEST_DB_URL) as c:
        if c.execute(TIMESCALE_AVAILABLE).fetchone() is None:
            return False
        return "timescaledb" in one_row(c.execute("SHOW shared_preload_libraries"))[0]


# Parametrise a storage fixture with these: the TimescaleDB case skips, with its reason, where absent.
STORAGES = ["plain", pytest.param("timescale", marks=pytest.mark.skipif(not timescale_available(),
                                                                         reason=NO_TIMESCALE))]


def create_database(storage: str | None = None, upto: int | None = None) -> str:
    """A fresh, migrated database (up to ``upto``, by default all) with the divisions loaded; its URL."""
    name = f"safewatch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(TEST_DB_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(TEST_DB_URL, name)
    migrate(url, storage=storage, upto=upto)
    with psycopg.connect(url) as conn:
        load_divisions(conn)
    return url


_provisioned = threading.Lock()
_ROLES_LOCK = 0x5AFE_0001  # pg_advisory_lock key: provisioning the test server's login roles
_login_roles_made = False


def role_password(process: str) -> str:
    # Fixed, so two test sessions provisioning the cluster's login roles agree; the cluster is a test one.
    return f"test-only-password-of-{process}"


def process_url(url: str, process: str) -> str:
    """``url`` (a test database) as seen by ``process``'s login role (ingest, alerts, notifier, api, grafana).

    The login roles are cluster-wide: made (or updated) once per test session, as production's setup does.
    """
    global _login_roles_made
    with _provisioned:
        if not _login_roles_made:
            with psycopg.connect(TEST_DB_URL, autocommit=True) as admin:
                # Roles are the cluster's: two test sessions (xdist workers, two checkouts) take turns.
                admin.execute("SELECT pg_advisory_lock(%s)", (_ROLES_LOCK,))
                provision_login_roles(admin, {p: role_password(p) for p in PROCESSES})
            _login_roles_made = True
    parts = urlsplit(url)
    netloc = f"{login_role(process)}:{role_password(process)}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(TEST_DB_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg_url) as c:
        yield c
        c.rollback()


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    """The broker the tests use: SAFEWATCH_TEST_MQTT_URL when set; else a Mosquitto of the tests' own,
    configured as we ship it (a stock broker's 1,000-message queue per subscriber drops QoS 1 bursts,
    and the machine's broker is not ours to reconfigure); else the local broker on 1883."""
    if TEST_MQTT_URL:
        yield TEST_MQTT_URL
    elif Path(MOSQUITTO).exists():
        with PrivateBroker(shipped=True) as broker:
            yield broker.url
    else:
        yield "mqtt://127.0.0.1:1883"


@pytest.fixture
def settings(pg_url: str, mqtt_url: str, uid: str) -> Settings:
    return Settings(
        db=DbSettings(url=pg_url),
        mqtt=MqttSettings(url=mqtt_url, session_expiry_s=120),
        ingest=IngestSettings(worker_id=f"ingest-{uid}", share_group=f"ingest-{uid}", metrics_port=None,
                              batch_max_ms=20),
        alerts=AlertSettings(worker_id=f"alerts-{uid}", metrics_port=None),
    )


@pytest.fixture
def fleet(pg_url: str, uid: str) -> Callable[..., DemoRegistry]:
    """Insert a generated fleet of ``n`` equipment with gateways named ``t{uid}-…``."""
    divisions = parse_divisions(shipped_divisions_text())

    def make(n: int = 120, *, seed: int = 7) -> DemoRegistry:
        registry = demo_registry(divisions, n, seed=seed, gateway_prefix=f"t{uid}", serial_start=next(_serials))
        with psycopg.connect(pg_url) as c:
            insert_registry(c, registry)
        return registry

    return make


_PROCESS_OF_MODULE = {"ingest.worker": "ingest", "alerts.worker": "alerts", "alerts.notifier_worker": "notifier"}


def as_process_role(settings: Settings, run_fn: Callable[..., Any]) -> Settings:
    """``settings`` with the worker's own login role where its database is on the shared test server as the
    owner (a private cluster started by a test has no such roles: its URL is kept)."""
    process = _PROCESS_OF_MODULE.get(run_fn.__module__)
    if process is None or urlsplit(settings.db.url).netloc != urlsplit(TEST_DB_URL).netloc:
        return settings
    return settings.model_copy(update={"db": DbSettings(url=process_url(settings.db.url, process))})


@pytest.fixture
def running() -> Iterator[Callable[..., CollectorRegistry]]:
    """``running(run_fn, settings)`` starts a worker in a thread with a private metrics registry.

    It returns once the worker's subscriptions are acknowledged by the broker. A worker pointed at a database
    of the shared test server runs as its own database role, as in production (`as_process_role`).
    """
    started: list[tuple[threading.Event, threading.Thread]] = []

    def start(run_fn: Callable[..., Any], settings: Settings, *, ready_timeout: float = 20.0) -> CollectorRegistry:
        settings = as_process_role(settings, run_fn)
        stop, ready, registry = threading.Event(), threading.Event(), CollectorRegistry()
        thread = threading.Thread(target=run_fn, args=(settings,),
                                  kwargs={"stop": stop, "registry": registry, "ready": ready}, daemon=True)
        thread.start()
        started.append((stop, thread))
        assert ready.wait(ready_timeout), f"{run_fn.__module__} did not subscribe within {ready_timeout} s"
        return registry

    yield start
    for stop, _ in started:
        stop.set()
    for _, thread in started:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a worker did not stop within 30 s of its stop event"


@dataclass(frozen=True)
class Caller:
    """A person with a token: ``headers`` authenticate a request as them."""

    username: str
    role: str
    division: str
    headers: dict[str, str]


def stored_callers(db_url: str, secret: str) -> Callable[[str, str], Caller]:
    """``stored_callers(url, secret)(role, division)``: a person of that role bound to that division, stored in
    the database at ``url``, with a token signed by ``secret``; made once per (role, division)."""
    made: dict[tuple[str, str], Caller] = {}

    def make(role: str, division: str) -> Caller:
        if (role, division) not in made:
            username = f"{role}-{division}"
            with psycopg.connect(db_url) as conn:
                user_id = upsert_user(conn, username, "a-long-test-password", role, division)
                token = token_for(conn, user_id, secret=secret, ttl_s=3600)
            made[(role, division)] = Caller(username, role, division, {"Authorization": f"Bearer {token}"})
        return made[(role, division)]

    return make
