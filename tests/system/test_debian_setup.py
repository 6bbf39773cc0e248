"""`safewatch setup` end to end, as on a Debian host, on private instances: a PostgreSQL cluster of our own and a
Mosquitto whose main file is Debian's (persistence, then `include_dir conf.d`), reading only what setup wrote.

There is no systemd here: each process is started with exactly the ExecStart command line and the environment
its written unit gives it (its EnvironmentFile= files, in order). After setup an anonymous client is refused on
both broker listeners, the first administrator logs in, a gateway registered through the API and applied by a
second run of setup publishes over TLS with its generated password and its reading is stored, and every process
is connected to the database under its own login.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
import pytest

from bench.ingest.instances import MOSQUITTO, PG_BIN, PrivatePostgres, free_port, owned_by, wait_port
from safewatch.contract import Kind, build_topic, encode_telemetry
from safewatch.db import one_row
from safewatch.install.secret_file import parse_env
from safewatch.install.units import PROCESSES, Layout
from safewatch.registry.divisions import parse_divisions, shipped_divisions_text
from safewatch.registry.seed import demo_registry, insert_registry
from tests.integration.broker_security.test_shipped_broker import Client
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
VALUES = {"3000": {"speed": 1.0}, "1000": {"drum_pressure": 0.8}, "2000": {"vessel_pressure": 0.6}}
pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not (PG_BIN / "initdb").exists() or not Path(MOSQUITTO).exists(),
                       reason="needs PostgreSQL server binaries (initdb) and mosquitto for private instances"),
]


def login_role(process: str) -> str:
    """The database login each process's unit must use (docs/deploying.md)."""
    return f"safewatch_{process}_login"


@dataclass(frozen=True)
class Unit:
    """What systemd would run: the command line and the environment its unit file gives it."""

    exec_start: list[str]
    env: dict[str, str]


def read_unit(path: Path) -> Unit:
    env: dict[str, str] = {}
    command: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key == "EnvironmentFile":  # in order, a later file wins; "-" marks one that may be absent
            file = Path(value.removeprefix("-"))
            if file.exists() or not value.startswith("-"):
                env.update(parse_env(file.read_text(encoding="utf-8")))
        elif key == "Environment":
            name, _, setting = value.partition("=")
            env[name] = setting
        elif key == "ExecStart":
            command = shlex.split(value)
    assert command, f"{path} has no ExecStart"
    return Unit(command, env)


@dataclass
class Host:
    root: Path
    db_url: str
    ports: dict[str, int]
    setup_args: list[str]

    @property
    def layout(self) -> Layout:
        return Layout(self.root)

    def setup(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "safewatch.cli", "setup", *self.setup_args], capture_output=True,
                              text=True, timeout=180, check=False, cwd=self.root,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    root = Path(tempfile.mkdtemp(prefix="sw-debian-"))
    root.chmod(0o755)  # the broker, once it drops to its own user, reads the files setup gave it under here
    with PrivatePostgres() as pg:
        # As the docs have the operator do it: an owner that is no superuser, and its database.
        with psycopg.connect(pg.url, autocommit=True) as admin:
            admin.execute("CREATE ROLE safewatch LOGIN CREATEROLE PASSWORD 'owner-password-for-the-test'")
            admin.execute("CREATE DATABASE safewatch OWNER safewatch")
        owner_url = f"postgresql://safewatch:owner-password-for-the-test@127.0.0.1:{pg.port}/safewatch"
        db_url = pg.url.rsplit("/", 1)[0] + "/safewatch"  # the superuser's, for the test's own look-ups
        ports = {name: free_port() for name in ("mqtt", "tls", "health", "api", "m_ingest", "m_alerts", "m_notifier")}
        args = ["--root", str(root), "--no-system-user", "--db-url", owner_url, "--storage", "plain",
                "--hostname", "localhost", "--mqtt-port", str(ports["mqtt"]), "--mqtt-tls-port", str(ports["tls"]),
                "--mqtt-tls-bind", "127.0.0.1", "--mqtt-health-port", str(ports["health"]),
                "--api-port", str(ports["api"]),
                *(a for p in ("ingest", "alerts", "notifier")
                  for a in ("--set", f"SAFEWATCH_{p.upper()}__METRICS_PORT={ports['m_' + p]}"))]
        yield Host(root, db_url, ports, args)
    subprocess.run(["rm", "-rf", str(root)], check=False)


@pytest.fixture(scope="module")
def broker(host: Host) -> Iterator[subprocess.Popen[bytes]]:
    """Debian's mosquitto.conf, then whatever setup dropped into conf.d; started after the first setup."""
    first = host.setup()
    assert first.returncode == 0, first.stderr
    assert "first administrator admin created" in first.stdout, first.stdout
    data = host.root / "var" / "lib" / "mosquitto"
    data.mkdir(parents=True)
    owned_by(data, "mosquitto")
    conf = host.root / "etc" / "mosquitto" / "mosquitto.conf"
    conf.write_text(f"persistence true\npersistence_location {data}/\n"
                    f"include_dir {host.layout.mosquitto_dropin.parent}\n", encoding="utf-8")
    log = (host.root / "mosquitto.log").open("ab")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(host.ports["mqtt"], 10, proc)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def services(host: Host, broker: subprocess.Popen[bytes]) -> Iterator[dict[str, Path]]:
    """The four units' processes, as systemd would start them; their logs by process name."""
    procs: list[subprocess.Popen[bytes]] = []
    logs: dict[str, Path] = {}
    state = host.root / "var" / "lib" / "safewatch"
    state.mkdir(parents=True, exist_ok=True)
    try:
        for process in PROCESSES:
            unit = read_unit(host.layout.unit(process))
            logs[process] = host.root / f"{process}.log"
            with logs[process].open("ab") as out:
                procs.append(subprocess.Popen(unit.exec_start, stdout=out, stderr=subprocess.STDOUT, cwd=state,
                                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                                   "PYTHONPATH": str(REPO), **unit.env}))
        wait_port(host.ports["api"], 60, procs[-1])
        yield logs
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def broker_view(host: Host) -> SimpleNamespace:
    """What the shipped-broker test client needs to know of a broker: its files and ports."""
    return SimpleNamespace(files=host.layout.broker_dir, port=host.ports["mqtt"], tls_port=host.ports["tls"])


def token(host: Host, username: str, password: str) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{host.ports['api']}/api/v1/auth/token",
                      data={"username": username, "password": password}, timeout=10)


def test_setup_writes_private_secrets_and_units_that_run_as_their_own_logins(host: Host,
                                                                           services: dict[str, Path]) -> None:
    layout = host.layout
    assert layout.secrets.stat().st_mode & 0o777 == 0o600
    for process in PROCESSES:
        assert layout.process_env(process).stat().st_mode & 0o777 == 0o600
        unit = read_unit(layout.unit(process))
        assert unit.exec_start[-1] == process
        assert f"{login_role(process)}:" in unit.env["SAFEWATCH_DB__URL"]
    def connected(process: str) -> set[str]:
        return wait_until(lambda: _logins(host.db_url), lambda seen: login_role(process) in seen,
                          what=f"{process} connected as {login_role(process)}")

    in_use = {p: connected(p) for p in PROCESSES}
    assert all(in_use.values())


def _logins(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = "
                                           "current_database() AND usename IS NOT NULL").fetchall()}


def test_anonymous_publishing_is_refused_and_the_first_administrator_logs_in(host: Host,
                                                                          services: dict[str, Path]) -> None:
    view = broker_view(host)
    for gateway in (False, True):
        anonymous = Client(view, None, None, gateway=gateway)  # type: ignore[arg-type]
        try:
            code = anonymous.connected()
            assert code.is_failure and code.getName() == "Not authorized", (gateway, code)
        finally:
            anonymous.close()
    # The one anonymous listener (health checks, on loopback) lets nobody publish device topics.
    health = Client(view, None, None, gateway=False, port=host.ports["health"])  # type: ignore[arg-type]
    try:
        assert not health.connected().is_failure
        code = health.publish("se/v1/150100/gw-anyone/telemetry", b"forged")
        assert code.is_failure and code.getName() == "Not authorized", code
    finally:
        health.close()
    secrets = parse_env(host.layout.secrets.read_text(encoding="utf-8"))
    assert token(host, "admin", secrets["FIRST_ADMIN_PASSWORD"]).status_code == 200
    assert token(host, "admin", "not-the-password-at-all").status_code == 401


def test_a_gateway_registered_after_setup_publishes_over_tls_and_its_reading_is_stored(
        host: Host, broker: subprocess.Popen[bytes], services: dict[str, Path]) -> None:
    registry = demo_registry(parse_divisions(shipped_divisions_text()), 2, seed=3, gateway_prefix="gwdeb")
    with psycopg.connect(host.db_url) as conn:
        insert_registry(conn, registry)
    equipment = next(e for e in registry.equipment if e["category"] in VALUES)
    gateway_id, league = equipment["gateway_id"], next(g["league_code"] for g in registry.gateways
                                                       if g["id"] == equipment["gateway_id"])
    secrets_before = host.layout.secrets.read_bytes()
    secrets = parse_env(secrets_before.decode())
    bearer = token(host, "admin", secrets["FIRST_ADMIN_PASSWORD"]).json()["access_token"]
    issued = httpx.post(f"http://127.0.0.1:{host.ports['api']}/api/v1/gateways/{gateway_id}/credentials",
                        headers={"Authorization": f"Bearer {bearer}"}, timeout=10)
    assert issued.status_code == 200, issued.text
    # The operator applies it: setup again (idempotent: same secrets, no second administrator), broker reload.
    again = host.setup()
    assert again.returncode == 0, again.stderr
    assert "an active administrator exists" in again.stdout and "(1 gateways)" in again.stdout, again.stdout
    assert host.layout.secrets.read_bytes() == secrets_before
    assert "warning:" not in again.stderr, again.stderr  # Debian's mosquitto.conf takes the drop-in as it is
    broker.send_signal(signal.SIGHUP)
    wait_until(lambda: services["ingest"].read_text(encoding="utf-8"), lambda text: '"subscribed"' in text,
               what="the ingest worker subscribed")
    gateway = Client(broker_view(host), gateway_id, issued.json()["mqtt_password"], gateway=True)  # type: ignore[arg-type]
    try:
        wait_until(gateway.connected, lambda code: not code.is_failure, timeout=10, what="the gateway connected")
        payload = encode_telemetry({equipment["code"]: VALUES[equipment["category"]]}, ts_ms=int(time.time() * 1000))
        assert not gateway.publish(build_topic(league, gateway_id, Kind.TELEMETRY), payload).is_failure
    finally:
        gateway.close()
    stored = wait_until(lambda: _stored(host.db_url, equipment["code"]), lambda n: n > 0,
                        what=f"a reading of {equipment['code']} stored")
    assert stored == 1


def _stored(url: str, code: str) -> int:
    with psycopg.connect(url) as conn:
        return one_row(conn.execute("SELECT count(*) FROM readings r JOIN equipment e ON e.id = r.equipment_id "
                                    "WHERE e.code = %s", (code,)))[0]
