"""What docker-compose's one-shot services do on a first start, run here as compose runs them (`python -m`):
the first administrator logs in with the password from .env, and the broker's files make a working, locked
broker for a gateway registered in the database."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from api.app import create_app
from bench.ingest.instances import MOSQUITTO, PrivateBroker
from safewatch.db import one_row
from safewatch.registry.broker import mosquitto_hash
from safewatch.settings import ApiSettings, DbSettings, Settings
from tests.integration.broker_security.test_shipped_broker import Client
from tests.services import create_database, drop_database

ADMIN_PASSWORD = "first-admin-password-from-env"
SERVICE_PASSWORDS = {"ingest": "ingest-password-from-env-0123", "alerts": "alerts-password-from-env-0123",
                     "notifier": "notifier-password-from-env-012"}


@pytest.fixture(scope="module")
def fresh_db() -> Iterator[str]:
    """A database of this module's own, where no test but the first administrator's makes a person (the first
    administrator is made only where there is none)."""
    url = create_database(storage="plain")
    yield url
    drop_database(url)


def broker_owner() -> list[str]:
    """As compose gives the files to the image's broker user: here the local one, which root's broker drops to."""
    if os.geteuid() != 0:
        return []
    entry = pwd.getpwnam("mosquitto")
    return ["--owner", f"{entry.pw_uid}:{entry.pw_gid}"]


def one_shot(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
                               **env}, check=False)


def test_the_first_administrator_logs_in_and_a_restart_changes_nothing(fresh_db: str) -> None:
    env = {"SAFEWATCH_DB__URL": fresh_db, "FIRST_ADMIN_USERNAME": "chief", "FIRST_ADMIN_PASSWORD": ADMIN_PASSWORD}
    first = one_shot("api.auth.bootstrap", env=env)
    assert first.returncode == 0 and "created" in first.stdout, first.stderr
    # A restart with another password in .env neither resets the password nor makes a second administrator.
    again = one_shot("api.auth.bootstrap", env={**env, "FIRST_ADMIN_PASSWORD": "another-long-password"})
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr
    settings = Settings(db=DbSettings(url=fresh_db), api=ApiSettings(jwt_secret="s" * 32))
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        r = client.post("/api/v1/auth/token", data={"username": "chief", "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}).json()
        assert (me["role"], me["division_code"]) == ("administrator", "150000")
    with psycopg.connect(fresh_db) as conn:
        assert one_row(conn.execute("SELECT count(*) FROM users"))[0] == 1


def test_a_weak_or_missing_first_password_is_refused_with_what_to_do(fresh_db: str) -> None:
    weak = one_shot("api.auth.bootstrap", env={"SAFEWATCH_DB__URL": fresh_db, "FIRST_ADMIN_PASSWORD": "short"})
    assert weak.returncode != 0 and "scripts/make-env" in weak.stderr
    missing = one_shot("api.auth.bootstrap", env={"SAFEWATCH_DB__URL": fresh_db})
    assert missing.returncode != 0 and "FIRST_ADMIN_PASSWORD" in missing.stderr


@pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="needs the mosquitto binary")
def test_broker_init_files_lock_the_shipped_broker_for_a_registered_gateway(fresh_db: str) -> None:
    gateway_password = "registered-gateway-password-01"
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO gateways (id, league_code, name, password_hash, credentials_rotated_at) "
                     "VALUES ('gw-first-1', '150100', 'first', %s, now())", (mosquitto_hash(gateway_password),))
    broker = PrivateBroker(secured=True)
    env = {"SAFEWATCH_DB__URL": fresh_db, **{f"SAFEWATCH_BROKER_PASSWORD_{k.upper()}": v
                                             for k, v in SERVICE_PASSWORDS.items()}}
    done = one_shot("safewatch.registry.broker_setup", "--out", str(broker.files), "--service", "ingest",
                    "--service", "alerts", "--service", "notifier", "--optional-service", "simulator",
                    "--hostname", "localhost", "--tls-from", str(broker.dir / "no-operator-certs"),
                    *broker_owner(), env=env)
    assert done.returncode == 0, done.stderr
    assert "1 gateways, 3 service accounts" in done.stdout  # no simulator without its password
    assert not (broker.files / "tls" / "ca.key").exists(), "the trial CA's key must not outlive the signing"
    clients: list[Client] = []
    with broker:
        try:
            ingest = Client(broker, "ingest", SERVICE_PASSWORDS["ingest"], gateway=False)
            clients.append(ingest)
            assert not ingest.connected().is_failure
            assert not ingest.subscribe("se/v1/+/+/+").is_failure
            gateway = Client(broker, "gw-first-1", gateway_password, gateway=True)
            clients.append(gateway)
            assert not gateway.connected().is_failure
            assert not gateway.publish("se/v1/150100/gw-first-1/telemetry", b"hello").is_failure
            assert ingest.messages.get(timeout=10) == ("se/v1/150100/gw-first-1/telemetry", b"hello")
            anonymous = Client(broker, None, None, gateway=True)
            clients.append(anonymous)
            assert anonymous.connected().is_failure
        finally:
            for c in clients:
                c.close()
