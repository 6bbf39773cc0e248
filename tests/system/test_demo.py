"""`safewatch demo` on the embedded fallbacks, as on a machine where only Python is installed:
it starts pgserver's PostgreSQL and the pip-installed broker, serves the API with live data, stops
every child on Ctrl-C, and keeps its data across a restart. With its default ports busy (the API's
8000 and the workers' metrics 9101–9103) it picks free ones and announces the URL of its own API."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from safewatch.demo import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.system

pgserver = pytest.importorskip("pgserver", reason="the 'embedded' extra is not installed")
pytest.importorskip("amqtt", reason="the 'embedded' extra is not installed")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """The demo's data directory, outside pytest's: the embedded PostgreSQL runs as another user (pgserver)
    that must traverse the path, and every pytest session started meanwhile on this machine (other
    checkouts' tests) resets /tmp/pytest-of-<user> to owner-only, which once stopped it mid-test."""
    path = Path(tempfile.mkdtemp(prefix="safewatch-demo-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


DEFAULT_PORTS = (8000, 9101, 9102, 9103)  # the API's and the ingest, alerts and notifier metrics


@contextmanager
def listening(ports: tuple[int, ...]) -> Iterator[list[int]]:
    """Listen on each port of 127.0.0.1 that is free (one that is not is busy already); yield the ones held."""
    held: list[socket.socket] = []
    try:
        for port in ports:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
                s.listen()
                held.append(s)
            except OSError:
                s.close()
        yield [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def scrape(url: str) -> str:
    """The metrics at ``url``, or "" while nothing answers there yet (the worker is still starting)."""
    try:
        return httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return ""


class Demo:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        env = {**os.environ, "SAFEWATCH_DATA_DIR": str(data_dir), "SAFEWATCH_LOG_JSON": "true"}
        metrics = (f"SAFEWATCH_{p}__METRICS_PORT" for p in ("INGEST", "ALERTS", "NOTIFIER"))
        for name in ("SAFEWATCH_DB__URL", "DATABASE_URL", "SAFEWATCH_MQTT__URL", "MQTT_URL", "SAFEWATCH_API__PORT",
                     "SAFEWATCH_API__HOST", *metrics):
            env.pop(name, None)
        # The children's logs (stderr) go to a file, so a failure below can say what they said.
        self.err_path = data_dir / f"demo-stderr-{id(self)}.log"
        with self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "safewatch.cli", "demo", "--embedded", "--broker", "amqtt",
                 *(["--port", str(port)] if port is not None else []), "--equipment", "300", "--interval", "1"],
                env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        self.out: list[str] = []
        self.running = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.out.append(line)
            if "SafeWatch is running" in line:
                self.running.set()

    def announced(self, pattern: str) -> str:
        """The first group of ``pattern`` in what the demo printed."""
        found = re.search(pattern, "".join(self.out))
        assert found, self.transcript()
        return found.group(1)

    def transcript(self) -> str:
        """What the demo printed, then the last of its children's logs."""
        return "".join(self.out) + "\n--- logs ---\n" + self.err_path.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)


def test_demo_runs_on_embedded_services_and_restarts_with_its_data(data_dir):
    with listening(DEFAULT_PORTS) as held:  # another program on the default ports
        demo = Demo(data_dir)
        try:
            assert demo.running.wait(120), demo.transcript()
            text = "".join(demo.out)
            assert "embedded (pgserver)" in text and "embedded amqtt" in text
            assert "300 equipment in the registry" in text
            url = demo.announced(r"SafeWatch is running: open (http://127\.0\.0\.1:\d+)/")
            assert int(url.rsplit(":", 1)[1]) not in held, demo.transcript()
            password = (data_dir / "demo-password").read_text().strip()
            api = httpx.Client(base_url=url, timeout=10)  # the URL announced is the demo's own API
            token = api.post("/api/v1/auth/token", data={"username": "hohhot", "password": password}).json()
            api.headers["Authorization"] = "Bearer " + token["access_token"]
            divisions = api.get("/api/v1/divisions").json()
            assert {d["code"] for d in divisions if d["level"] == "league"} == {"150100"}  # a league inspector's scope
            # The simulated fleet's gateways come online through the broker and ingest.
            online = wait_until(lambda: sum(d["online"] for d in api.get("/api/v1/divisions").json()),
                                lambda n: n > 0, timeout=60, what="simulated gateways online")
            assert online <= sum(d["equipment"] for d in divisions)
            # The alert worker runs, and serves its metrics on the free port the demo chose for it.
            alerts = demo.announced(r"alerts (http://127\.0\.0\.1:\d+/metrics)")
            assert int(alerts.rsplit(":", 1)[1].split("/")[0]) not in held
            wait_until(lambda: scrape(alerts), lambda t: "safewatch_alerts_" in t, timeout=60,
                       what="the alert worker's metrics")
            assert demo.proc.poll() is None, demo.transcript()
        finally:
            code = demo.stop()
    assert code == 0, demo.transcript()
    assert "stopping" in "".join(demo.out)

    port = free_port()  # now set explicitly: used as given
    again = Demo(data_dir, port)
    try:
        assert again.running.wait(120), again.transcript()
        assert "300 equipment in the registry" in "".join(again.out)
        assert again.announced(r"SafeWatch is running: open (http://\S+)/") == f"http://127.0.0.1:{port}"
    finally:
        assert again.stop() == 0
