"""A busy port, process by process: the workers run on without /metrics and say so in one line naming the
variable to set; the API and `safewatch demo --port` end with exit code 2 and one line naming theirs.

Each port is made busy by a listening socket of the test's own on 127.0.0.1 (a free port, set as the
process's port), so the tests never depend on what else runs on this machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from safewatch.demo import free_port
from safewatch.settings import Settings
from tests.waiting import wait_until


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))
        s.listen()
        yield s.getsockname()[1]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen([sys.executable, "-m", "safewatch.cli", *args], stdout=err, stderr=subprocess.STDOUT,
                                env={**os.environ, "SAFEWATCH_LOG_JSON": "true", "SAFEWATCH_API__HOST": "127.0.0.1",
                                     **env})


def lines_naming(log: Path, variable: str) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if variable in line]


WORKERS = [("ingest", "ingest worker started"), ("alerts", "alert worker started"), ("notifier", "notifier started")]
# The alert worker owns a league code no fleet uses: the retained statuses other tests left on the broker
# raise nothing in the shared test database.
QUIET = {"alerts": {"SAFEWATCH_ALERTS__LEAGUES": '["159900"]'}}


@pytest.mark.parametrize(("process", "started"), WORKERS, ids=[w for w, _ in WORKERS])
def test_a_worker_with_its_metrics_port_busy_runs_on_and_says_once_which_variable_to_set(
        process, started, busy_port, settings: Settings, uid, tmp_path):
    variable = f"SAFEWATCH_{process.upper()}__METRICS_PORT"
    log = tmp_path / f"{process}.log"
    proc = start([process], {"SAFEWATCH_DB__URL": settings.db.url, "SAFEWATCH_MQTT__URL": settings.mqtt.url,
                             "SAFEWATCH_MQTT__SESSION_EXPIRY_S": "0", f"SAFEWATCH_{process.upper()}__WORKER_ID": uid,
                             variable: str(busy_port), **QUIET.get(process, {})}, log)
    try:
        wait_until(lambda: proc.poll() is not None or started in log.read_text(errors="replace"), bool,
                   timeout=60, what=f"{process} started (or exited)")
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        said = lines_naming(log, variable)
        assert len(said) == 1, log.read_text(errors="replace")[-3000:]
        assert str(busy_port) in said[0] and "in use" in said[0] and '"level": "ERROR"' in said[0]
        assert "Traceback" not in log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text(errors="replace")[-3000:]


def test_the_api_on_a_busy_port_exits_2_with_one_line_naming_the_variable(busy_port, settings: Settings, tmp_path):
    log = tmp_path / "api.log"
    proc = start(["api"], {"SAFEWATCH_DB__URL": settings.db.url, "SAFEWATCH_API__PORT": str(busy_port)}, log)
    assert proc.wait(timeout=60) == 2, log.read_text(errors="replace")[-3000:]
    text = log.read_text(errors="replace")
    assert len(lines_naming(log, "SAFEWATCH_API__PORT")) == 1, text
    assert "Traceback" not in text and str(busy_port) in text


def test_the_demo_told_to_use_a_busy_port_exits_2_before_starting_anything(busy_port, tmp_path):
    log = tmp_path / "demo.log"
    proc = start(["demo", "--port", str(busy_port)], {"SAFEWATCH_DATA_DIR": str(tmp_path / "data")}, log)
    assert proc.wait(timeout=60) == 2, log.read_text(errors="replace")[-3000:]
    text = log.read_text(errors="replace")
    assert text.strip().splitlines() == [
        f"SafeWatch demo: port {busy_port} on 127.0.0.1 is in use by another program; free it, or choose another "
        "API port with --port or SAFEWATCH_API__PORT"], text
    assert not (tmp_path / "data").exists()  # nothing was started or written
