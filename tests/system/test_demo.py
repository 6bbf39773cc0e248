"""`safewatch demo` on the embedded fallbacks, as on a machine where only Python is installed:
it starts pgserver's PostgreSQL and the pip-installed broker, serves the API with live data, stops
every child on Ctrl-C, and keeps its data across a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from safewatch.demo import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.system

pgserver = pytest.importorskip("pgserver", reason="the 'embedded' extra is not installed")
pytest.importorskip("amqtt", reason="the 'embedded' extra is not installed")


class Demo:
    def __init__(self, data_dir: Path, port: int) -> None:
        env = {**os.environ, "SAFEWATCH_DATA_DIR": str(data_dir), "SAFEWATCH_LOG_JSON": "true",
               "SAFEWATCH_INGEST__METRICS_PORT": str(free_port()), "SAFEWATCH_ALERTS__METRICS_PORT": str(free_port())}
        for name in ("SAFEWATCH_DB__URL", "DATABASE_URL", "SAFEWATCH_MQTT__URL", "MQTT_URL"):
            env.pop(name, None)
        # The children's logs (stderr) go to a file, so a failure below can say what they said.
        self.err_path = data_dir / f"demo-stderr-{id(self)}.log"
        with self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "safewatch.cli", "demo", "--embedded", "--broker", "amqtt", "--port", str(port),
                 "--equipment", "300", "--interval", "1"], env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        self.out: list[str] = []
        self.running = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.out.append(line)
            if "SafeWatch is running" in line:
                self.running.set()

    def transcript(self) -> str:
        """What the demo printed, then the last of its children's logs."""
        return "".join(self.out) + "\n--- logs ---\n" + self.err_path.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)


def test_demo_runs_on_embedded_services_and_restarts_with_its_data(tmp_path):
    port = free_port()
    demo = Demo(tmp_path, port)
    try:
        assert demo.running.wait(120), demo.transcript()
        text = "".join(demo.out)
        assert "embedded (pgserver)" in text and "embedded amqtt" in text
        assert "300 equipment in the registry" in text
        password = (tmp_path / "demo-password").read_text().strip()
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        token = api.post("/api/v1/auth/token", data={"username": "hohhot", "password": password}).json()
        api.headers["Authorization"] = "Bearer " + token["access_token"]
        divisions = api.get("/api/v1/divisions").json()
        assert {d["code"] for d in divisions if d["level"] == "league"} == {"150100"}  # a league inspector's scope
        # The simulated fleet's gateways come online through the broker and ingest.
        online = wait_until(lambda: sum(d["online"] for d in api.get("/api/v1/divisions").json()),
                            lambda n: n > 0, timeout=60, what="simulated gateways online")
        assert online <= sum(d["equipment"] for d in divisions)
    finally:
        code = demo.stop()
    assert code == 0, demo.transcript()
    assert "stopping" in "".join(demo.out)

    again = Demo(tmp_path, port)
    try:
        assert again.running.wait(120), again.transcript()
        assert "300 equipment in the registry" in "".join(again.out)
    finally:
        assert again.stop() == 0
