"""`safewatch demo`: the whole system on one machine with one command.

Uses the local PostgreSQL and Mosquitto when they answer (or DATABASE_URL / MQTT_URL when set);
otherwise starts embedded ones (pgserver's PostgreSQL, then Mosquitto if installed, else amqtt).
Then migrates, seeds a demo registry and people, and runs ingest, alerts, the notifier, the API and a simulated fleet
as child processes until Ctrl-C, which stops every child cleanly. Data lives in ``data_dir``.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from safewatch.db import ensure_database
from safewatch.registry.divisions import load_divisions, parse_divisions, shipped_divisions_text
from safewatch.registry.seed import demo_registry, insert_registry
from safewatch.schema.migrate import migrate
from safewatch.settings import Settings

log = logging.getLogger(__name__)

DEMO_USERS = (  # username, role, division
    ("admin", "administrator", "150000"),
    ("region", "region_inspector", "150000"),
    ("hohhot", "league_inspector", "150100"),
    ("xincheng", "banner_inspector", "150102"),
    ("emergency", "emergency_responder", "150000"),
    ("clerk", "registry_clerk", "150000"),
)


@dataclass
class Services:
    """What the demo runs; stopped in reverse order."""

    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    embedded_pg: object | None = None

    def stop(self) -> None:
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in reversed(self.children):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log.warning("child did not stop in 15 s; killing", extra={"child": name})
                proc.kill()
        if self.embedded_pg is not None:
            self.embedded_pg.cleanup()  # type: ignore[attr-defined]


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not answers(host, port):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process meant to listen on {host}:{port} exited with code {proc.returncode}; "
                               "its log is above")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing answers on {host}:{port} after {timeout:.0f} s")
        time.sleep(0.1)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a server we are about to start.

    It is drawn from below the kernel's ephemeral range. A port from that range (what binding port 0
    gives) is free when asked, but any outgoing connection may take it before the server binds it:
    the demo's API once lost its port that way, to one of the demo's own connections.
    """
    low = _ephemeral_low()
    pool = range(20_000, low) if low > 21_000 else None
    for _ in range(200):
        port = secrets.choice(pool) if pool is not None else 0
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or lingering): draw again
            return int(s.getsockname()[1])
    raise RuntimeError("no free TCP port on 127.0.0.1 after 200 draws; is something holding thousands of ports?")


def _ephemeral_low() -> int:
    """The lowest port the kernel hands to outgoing connections (Linux's default where unreadable)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def choose_database(settings: Settings, services: Services, *, embedded: bool = False) -> str:
    explicit = os.environ.get("SAFEWATCH_DB__URL") or os.environ.get("DATABASE_URL")
    if not embedded and (explicit or answers("127.0.0.1", 5432)):
        url = settings.db.url
        ensure_database(url)
        return url
    import pgserver  # the embedded fallback (extra "embedded")

    server = pgserver.get_server(settings.data_dir / "pg", cleanup_mode="stop")
    services.embedded_pg = server
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'safewatch'").fetchone() is None:
            conn.execute("CREATE DATABASE safewatch")
    print("  PostgreSQL: embedded (pgserver), data in", settings.data_dir / "pg")
    return server.get_uri("safewatch")


def choose_broker(settings: Settings, services: Services, env: dict[str, str], *, embedded: bool = False,
                  broker: str = "auto") -> None:
    """Use the configured or local broker; else start Mosquitto if installed, else amqtt.

    ``embedded`` starts one of our own even when a local broker answers, on a free port.
    """
    explicit = os.environ.get("SAFEWATCH_MQTT__URL") or os.environ.get("MQTT_URL")
    if not embedded and (explicit or answers("127.0.0.1", 1883)):
        return
    port = free_port() if embedded else 1883
    settings.mqtt.url = f"mqtt://127.0.0.1:{port}"
    mosquitto = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if mosquitto and broker != "amqtt":
        data = (settings.data_dir / "mosquitto").resolve()
        data.mkdir(parents=True, exist_ok=True)
        shipped = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "mosquitto.conf"
        conf = data / "mosquitto.conf"
        text = shipped.read_text() if shipped.exists() else "listener 1883\nallow_anonymous true\npersistence true\n"
        conf.write_text(text.replace("/mosquitto/data/", f"{data}/").replace("listener 1883",
                                                                              f"listener {port} 127.0.0.1"))
        services.children.append(("mosquitto", subprocess.Popen([mosquitto, "-c", str(conf)])))
        print("  MQTT: embedded Mosquitto, data in", data)
    else:
        services.children.append(("amqtt", subprocess.Popen([sys.executable, "-m", "safewatch.embedded.broker",
                                                             "--port", str(port)])))
        env["SAFEWATCH_MQTT__PROTOCOL5"] = "false"
        print("  MQTT: embedded amqtt (MQTT 3.1.1; install Mosquitto for v5 and shared subscriptions)")
    _wait_port("127.0.0.1", port, 20)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _secret(path: Path) -> str:
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def seed(url: str, equipment: int, password: str) -> int:
    """Migrate, load divisions, and seed the registry and people when the registry is empty."""
    from api.auth.users import upsert_user  # only the demo seeds people this way

    storage = migrate(url)
    with psycopg.connect(url) as conn:
        load_divisions(conn)
        have = conn.execute("SELECT count(*) FROM equipment").fetchone()[0]
        if have == 0:
            divisions = parse_divisions(shipped_divisions_text())
            have = insert_registry(conn, demo_registry(divisions, equipment))
        for username, role, division in DEMO_USERS:
            upsert_user(conn, username, password, role, division)
        conn.commit()
    print(f"  Database: migrated ({storage} storage), {have} equipment in the registry")
    return have


def run(settings: Settings, *, equipment: int = 1200, interval_s: float = 5.0, fault_rate: float = 0.02,
        embedded: bool = False, broker: str = "auto") -> None:
    """Start everything and block until Ctrl-C (or SIGTERM).

    ``embedded`` ignores local services and starts our own (how a machine without them runs).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    services = Services()
    env = dict(os.environ)
    try:
        print("SafeWatch demo: starting")
        signal.signal(signal.SIGTERM, _interrupt)
        url = choose_database(settings, services, embedded=embedded)
        choose_broker(settings, services, env, embedded=embedded, broker=broker)
        password = os.environ.get("SAFEWATCH_DEMO_PASSWORD") or _secret(settings.data_dir / "demo-password")
        seed(url, equipment, password)
        env.update({"SAFEWATCH_DB__URL": url, "SAFEWATCH_MQTT__URL": settings.mqtt.url,
                    "SAFEWATCH_API__PORT": str(settings.api.port),
                    "SAFEWATCH_API__JWT_SECRET": _secret(settings.data_dir / "jwt-secret")})
        cli = [sys.executable, "-m", "safewatch.cli"]
        for name, args in (("ingest", ["ingest"]), ("alerts", ["alerts"]), ("notifier", ["notifier"]), ("api", ["api"]),
                           ("simulate", ["simulate", "--interval", str(interval_s), "--fault-rate", str(fault_rate)])):
            services.children.append((name, subprocess.Popen([*cli, *args], env=env)))
        _wait_port(settings.api.host, settings.api.port, 60, dict(services.children)["api"])
        print(f"\nSafeWatch is running: open http://{settings.api.host}:{settings.api.port}/", flush=True)
        print(f"  log in as admin, region, hohhot (league), xincheng (banner) or emergency; password: {password}")
        print("  API docs: /docs · metrics: /metrics · Ctrl-C stops everything\n", flush=True)
        while all(proc.poll() is None for _, proc in services.children):
            time.sleep(1)
        dead = [name for name, proc in services.children if proc.poll() is not None]
        print(f"SafeWatch demo: {', '.join(dead)} exited; stopping the rest", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nSafeWatch demo: stopping")
    finally:
        services.stop()
