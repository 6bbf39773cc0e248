"""`safewatch demo`: the whole system on one machine with one command.

Uses the local PostgreSQL and Mosquitto when they answer (or DATABASE_URL / MQTT_URL when set);
otherwise starts embedded ones (pgserver's PostgreSQL, then Mosquitto if installed, else amqtt).
Then migrates, seeds a demo registry and people, and runs ingest, alerts, the notifier, the API and a simulated fleet
as child processes until Ctrl-C, which stops every child cleanly. Data lives in ``data_dir``.

Ports: a port set explicitly (``--port``, ``SAFEWATCH_API__PORT``, ``SAFEWATCH_<PROCESS>__METRICS_PORT``) is
used as given, and a busy explicit API port is a one-line error. Otherwise the demo uses the default when it is
free and a free port when not, and it announces its URL only once the API answering there says it is its own
(the instance token it passed, read back from /healthz).
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psycopg

from safewatch.db import ensure_database, one_row
from safewatch.metrics_server import METRICS_PROCESSES
from safewatch.registry.broker_conf import local_conf
from safewatch.registry.divisions import load_divisions, parse_divisions, shipped_divisions_text
from safewatch.registry.seed import demo_registry, insert_registry
from safewatch.runtime import EXIT_PORT_UNAVAILABLE, port_unavailable, setting_env_var
from safewatch.schema.migrate import migrate
from safewatch.settings import Settings

if TYPE_CHECKING:  # the embedded fallback is an extra, imported only when used
    from pgserver import PostgresServer

log = logging.getLogger(__name__)

DEMO_USERS = (  # username, role, division
    ("admin", "administrator", "150000"),
    ("region", "region_inspector", "150000"),
    ("hohhot", "league_inspector", "150100"),
    ("xincheng", "banner_inspector", "150102"),
    ("emergency", "emergency_responder", "150000"),
    ("clerk", "registry_clerk", "150000"),
)


#: Children that are the demo's own broker (stopped after the rest).
EMBEDDED_BROKERS = ("mosquitto", "amqtt")
#: How many ports the demo tries for its API when the one it chose is taken before the API binds it.
API_PORT_ATTEMPTS = 3


class DemoPortBusy(Exception):
    """An explicitly chosen port is in use: the message names the option or variable to change."""


@dataclass
class Services:
    """What the demo runs; stopped in reverse order."""

    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    embedded_pg: PostgresServer | None = None

    def stop(self) -> None:
        # The embedded broker last: the others finish (and disconnect) while it still answers.
        brokers = [(n, p) for n, p in self.children if n in EMBEDDED_BROKERS]
        for group in ([(n, p) for n, p in self.children if n not in EMBEDDED_BROKERS], brokers):
            for _name, proc in reversed(group):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for name, proc in reversed(group):
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    log.warning("child did not stop in 15 s; killing", extra={"child": name})
                    proc.kill()
        if self.embedded_pg is not None:
            self.embedded_pg.cleanup()


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


def choose_port(wanted: int, *, explicit: bool, free: bool, draw: Callable[[], int]) -> int | None:
    """The port to use: the wanted one when free or set explicitly, else a drawn one; None: explicit and busy.

    An explicit port is the operator's: the demo never moves it, it says what to change instead.
    """
    if free:
        return wanted
    return None if explicit else draw()


def api_port_busy_message(host: str, port: int, reason: str = "in use by another program") -> str:
    """The one line `safewatch demo` ends with when the API port it was told to use is taken."""
    return (f"SafeWatch demo: port {port} on {host} is {reason}; free it, or choose another "
            f"API port with --port or {setting_env_var('api', 'port')}")


def metrics_ports(settings: Settings, free: Callable[[int], bool], draw: Callable[[], int]) -> dict[str, int]:
    """process → metrics port for those not set explicitly: the default when free, else a free one."""
    chosen = {}
    for process in METRICS_PROCESSES:
        group = getattr(settings, process)
        if "metrics_port" in group.model_fields_set or not group.metrics_port:
            continue  # the operator's choice (a busy one: the worker says so once and runs on)
        chosen[process] = group.metrics_port if free(group.metrics_port) else draw()
    return chosen


def _url_host(host: str) -> str:
    """Where to reach a server listening on ``host`` from this machine."""
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def wait_own_api(base_url: str, instance: str, proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Wait until the API at ``base_url`` answers /healthz with ``instance``: None; or the API's exit code.

    Something else answering on that URL (another program on the port) is not taken for the API: the
    wait goes on until ours answers, exits (it could not bind the port) or the time is up.
    """
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            return code
        try:
            reply = httpx.get(f"{base_url}/healthz", timeout=2)
            if reply.status_code == 200 and reply.json().get("instance") == instance:
                return None
        except (httpx.HTTPError, ValueError, AttributeError):
            pass  # not up yet, or not ours: look again
        if time.monotonic() > deadline:
            raise RuntimeError(f"the demo's API did not answer on {base_url} within {timeout:.0f} s; its log is "
                               "above")
        time.sleep(0.2)


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
        text = shipped.read_text() if shipped.exists() else "persistence true\n"
        # The shipped delivery settings on one anonymous listener on 127.0.0.1 (the demo's gateways hold no
        # credentials; nothing off this machine reaches it).
        conf.write_text(local_conf(text, port=port, data_dir=data))
        # In a session of its own: Ctrl-C reaches the terminal's whole process group, and the broker must
        # outlive the workers' and fleet's clean disconnects (`Services.stop` ends it last).
        services.children.append(("mosquitto", subprocess.Popen([mosquitto, "-c", str(conf)], start_new_session=True)))
        print("  MQTT: embedded Mosquitto, data in", data)
    else:
        services.children.append(("amqtt", subprocess.Popen([sys.executable, "-m", "safewatch.embedded.broker",
                                                             "--port", str(port)], start_new_session=True)))
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
        have = one_row(conn.execute("SELECT count(*) FROM equipment"))[0]
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
    Raises `DemoPortBusy` before starting anything when the API port was set explicitly and is taken.
    """
    host = settings.api.host
    taken: set[int] = set()

    def draw() -> int:  # a free port not yet handed to another of the demo's servers
        while (port := free_port()) in taken:
            pass
        taken.add(port)
        return port

    api_explicit = "port" in settings.api.model_fields_set
    busy = port_unavailable(host, settings.api.port)
    api_port = choose_port(settings.api.port, explicit=api_explicit, free=busy is None, draw=draw)
    if api_port is None:
        raise DemoPortBusy(api_port_busy_message(host, settings.api.port, busy or ""))
    taken.add(api_port)
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
                    "SAFEWATCH_API__JWT_SECRET": _secret(settings.data_dir / "jwt-secret")})
        metrics = metrics_ports(settings, lambda p: p not in taken and port_unavailable(host, p) is None, draw)
        env.update({setting_env_var(process, "metrics_port"): str(port) for process, port in metrics.items()})
        cli = [sys.executable, "-m", "safewatch.cli"]
        base_url = _start_api(settings, services, env, cli, api_port, explicit=api_explicit, draw=draw)
        if "external_url" not in settings.notifier.model_fields_set:  # links in notifications point here
            env[setting_env_var("notifier", "external_url")] = base_url
        for name, args in (("ingest", ["ingest"]), ("alerts", ["alerts"]), ("notifier", ["notifier"]),
                           ("simulate", ["simulate", "--presence", "own", "--interval", str(interval_s),
                                         "--fault-rate", str(fault_rate)])):
            services.children.append((name, subprocess.Popen([*cli, *args], env=env)))
        print(f"\nSafeWatch is running: open {base_url}/", flush=True)
        print(f"  log in as admin, region, hohhot (league), xincheng (banner) or emergency; password: {password}")
        served = {p: metrics.get(p, getattr(settings, p).metrics_port) for p in METRICS_PROCESSES}
        print("  metrics: " + " · ".join(f"{p} http://{_url_host(host)}:{port}/metrics"
                                         for p, port in served.items() if port))
        print("  API docs: /docs · API metrics: /metrics · Ctrl-C stops everything\n", flush=True)
        while all(proc.poll() is None for _, proc in services.children):
            time.sleep(1)
        dead = [name for name, proc in services.children if proc.poll() is not None]
        print(f"SafeWatch demo: {', '.join(dead)} exited; stopping the rest", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nSafeWatch demo: stopping")
    finally:
        services.stop()


def _start_api(settings: Settings, services: Services, env: dict[str, str], cli: list[str], port: int, *,
               explicit: bool, draw: Callable[[], int]) -> str:
    """Start the API on ``port`` and return its URL once it answers as itself.

    A port the demo chose can still be taken before the API binds it: then it draws another (a few
    times). An explicit one taken meanwhile ends the demo with the one-line error.
    """
    for _attempt in range(API_PORT_ATTEMPTS):
        instance = secrets.token_hex(16)
        proc = subprocess.Popen([*cli, "api", "--instance", instance],
                                env={**env, setting_env_var("api", "port"): str(port)})
        services.children.append(("api", proc))
        base_url = f"http://{_url_host(settings.api.host)}:{port}"
        code = wait_own_api(base_url, instance, proc, timeout=60)
        if code is None:
            settings.api.port = port
            return base_url
        services.children.remove(("api", proc))
        if code != EXIT_PORT_UNAVAILABLE:
            raise RuntimeError(f"the demo's API exited with code {code}; its log is above")
        if explicit:
            raise DemoPortBusy(api_port_busy_message(settings.api.host, port))
        port = draw()
    raise RuntimeError(f"the demo's API found its port taken {API_PORT_ATTEMPTS} times in a row; is something "
                       "grabbing every free port?")
