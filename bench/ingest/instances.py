"""Private Mosquitto and PostgreSQL instances for benchmarks and fault tests.

The machine's broker (1883) and PostgreSQL (5432) are shared: anything that floods, kills or
restarts a service starts its own copy here, on a free port, with its own data directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import psutil
import psycopg

from safewatch.demo import free_port
from safewatch.registry.broker import BrokerAccount
from safewatch.registry.broker_conf import GATEWAYS_TLS_PORT, HEALTH_PORT, SERVICES_PORT, local_conf, rebased_conf
from safewatch.registry.broker_setup import setup_broker_dir

REPO = Path(__file__).resolve().parents[2]
SHIPPED_BROKER_CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
def _pg_bin() -> Path:
    """The newest Debian PostgreSQL server binaries (initdb, pg_ctl), unless SAFEWATCH_PG_BIN says."""
    if "SAFEWATCH_PG_BIN" in os.environ:
        return Path(os.environ["SAFEWATCH_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Return once something accepts connections on ``port`` (the service says it is up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s") from None
            time.sleep(0.05)


def owned_by(path: Path, user: str) -> None:
    """Running as root, the services drop to their own user: let that user write the data dir."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        for p in (path, *path.rglob("*")):
            os.chown(p, entry.pw_uid, entry.pw_gid)


class PrivateBroker:
    """A Mosquitto on a free port, persistent data in its own directory.

    ``shipped=True`` uses deploy/mosquitto/mosquitto.conf's delivery settings (queue limits, persistence) on
    one anonymous listener bound to 127.0.0.1, as the demo runs it; ``secured=True`` the whole shipped file,
    its locked-down listeners included (services on ``port``, gateways over TLS on ``tls_port``, the health
    check on ``health_port``), reading the files `write_accounts` puts in ``files``; ``shipped=False``
    Mosquitto's defaults (persistence on).
    ``options`` set configuration options by name (``{"autosave_interval": "1"}``): each replaces the
    option's line where the configuration has one, else is added (the benches compare settings so).
    """

    def __init__(self, *, shipped: bool = True, extra: str = "", secured: bool = False,
                 options: Mapping[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sw-mosquitto-"))
        self.data = self.dir / "data"
        self.data.mkdir()
        self.files = self.dir / "safewatch"
        self.port = free_port()
        self.tls_port = free_port()
        self.health_port = free_port()
        if secured:
            text = rebased_conf(SHIPPED_BROKER_CONF.read_text(encoding="utf-8"), files_dir=self.files,
                                data_dir=self.data, ports={SERVICES_PORT: self.port,
                                                           GATEWAYS_TLS_PORT: self.tls_port,
                                                           HEALTH_PORT: self.health_port})
        elif shipped:
            text = local_conf(SHIPPED_BROKER_CONF.read_text(encoding="utf-8"), port=self.port, data_dir=self.data)
            text = re.sub(r"(?m)^persistence_location .*$", f"persistence_location {self.data}/", text)
        else:
            text = (f"persistence true\npersistence_location {self.data}/\nlistener {self.port} 127.0.0.1\n"
                    "allow_anonymous true\n")
        for name, value in (options or {}).items():
            text, found = re.subn(rf"(?m)^{re.escape(name)} .*$", f"{name} {value}", text)
            if not found:
                text += f"\n{name} {value}\n"
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(text + "\n" + extra + "\n", encoding="utf-8")
        self.log = self.dir / "mosquitto.log"
        owned_by(self.dir, "mosquitto")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> PrivateBroker:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT)
        wait_port(self.port, 10, self.proc)
        return self

    def stop(self) -> None:
        """Graceful stop: Mosquitto writes its persistence file on SIGTERM."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def write_accounts(self, accounts: list[BrokerAccount], *, hostnames: tuple[str, ...] = ("localhost",)) -> None:
        """Write a ``secured`` broker's accounts and ACLs (and trial TLS files the first time) into ``files``."""
        owner = None
        if os.geteuid() == 0:  # the broker drops to user mosquitto before it reads them
            entry = pwd.getpwnam("mosquitto")
            owner = (entry.pw_uid, entry.pw_gid)
        setup_broker_dir(self.files, accounts=accounts, hostnames=hostnames, owner=owner)

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its password and ACL files."""
        assert self.proc is not None and self.proc.poll() is None, "the broker is not running"
        self.proc.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """kill -9: the broker writes nothing more; what it persisted last is what a restart finds."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivateBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class PrivatePostgres:
    """A throw-away PostgreSQL 15 cluster (initdb + pg_ctl) on a free port, run as the postgres user."""

    def __init__(self, *, extra: str = "") -> None:
        self.extra = extra  # postgresql.conf lines added after ours (the last setting of a name wins)
        self.dir = Path(tempfile.mkdtemp(prefix="sw-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        owned_by(self.dir, "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, cwd=self.dir)

    def init(self) -> PrivatePostgres:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                       "fsync = on\nsynchronous_commit = on\nshared_buffers = 128MB\nmax_connections = 50\n"
                       f"{self.extra}\n")
        return self

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "pg.log"), "-w", "-t", "60", "start")
        wait_port(self.port, 30)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "pg.log"), "-m", "fast", "-w", "-t", "60",
                  "restart")
        wait_port(self.port, 30)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + "/" + name

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        self.init().start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The shared server the benches use unless told to start a private one.
SHARED_SERVER_URL = os.environ.get("SAFEWATCH_BENCH_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def bench_server(private_settings: str | None) -> Iterator[str]:
    """The PostgreSQL a bench runs on: the shared server, or with ``private_settings`` (comma-separated
    postgresql.conf lines; "" for its defaults) a private cluster started for the run and removed after."""
    if private_settings is None:
        yield SHARED_SERVER_URL
        return
    settings = [s.strip() for s in private_settings.split(",") if s.strip()]
    print(f"private PostgreSQL cluster with: {', '.join(settings) or 'its defaults'}")
    with PrivatePostgres(extra="\n".join(settings)) as pg:
        yield pg.url


def server_cpu(postmaster_pid: int) -> float:
    """User + system CPU seconds of a whole PostgreSQL server: its postmaster, the children alive now,
    and those gone (the postmaster reaps them, so their time is in its children's): the checkpointer,
    the WAL writer, autovacuum and TimescaleDB's jobs with the rest. A shared server's other clients
    count too: run the bench alone."""
    postmaster = psutil.Process(postmaster_pid)
    times = postmaster.cpu_times()
    return times.user + times.system + times.children_user + times.children_system + cpu_of(
        [child.pid for child in postmaster.children()])


def cpu_of(pids: list[int]) -> float:
    """User + system CPU seconds of these local processes (a PostgreSQL backend's, say); gone ones count 0."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total
