"""The whole pipeline as separate processes: simulator → broker → ingest + alerts → PostgreSQL → API.

An over-pressure injected by the simulator raises an alert visible through the API, and the alert
returns to normal once the fault clears.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from api.auth.users import upsert_user
from safewatch.demo import free_port
from safewatch.settings import Settings
from simulators.faults import Fault
from simulators.fleet import Fleet, SimEquipment
from tests.waiting import wait_until

pytestmark = pytest.mark.system


class Child:
    """A child process whose log is read continuously (so its pipe never fills) and kept."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._seen = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()

    def await_line(self, needle: str, timeout: float) -> None:
        """Return once the child has logged ``needle`` (it says it is ready)."""
        with self._seen:
            if not self._seen.wait_for(lambda: any(needle in line for line in self.lines), timeout):
                raise AssertionError(f"{self.proc.args!r} never logged {needle!r}:\n{''.join(self.lines[-20:])}")


@pytest.fixture
def processes(settings: Settings, uid: str) -> Iterator[dict[str, Any]]:
    api_port = free_port()
    env = {**os.environ, "SAFEWATCH_DB__URL": settings.db.url, "SAFEWATCH_MQTT__URL": settings.mqtt.url,
           "SAFEWATCH_MQTT__SESSION_EXPIRY_S": "120", "SAFEWATCH_LOG_JSON": "true",
           "SAFEWATCH_INGEST__WORKER_ID": f"ingest-{uid}", "SAFEWATCH_INGEST__SHARE_GROUP": f"g{uid}",
           "SAFEWATCH_INGEST__METRICS_PORT": str(free_port()), "SAFEWATCH_ALERTS__METRICS_PORT": str(free_port()),
           "SAFEWATCH_ALERTS__WORKER_ID": f"alerts-{uid}", "SAFEWATCH_API__PORT": str(api_port),
           "SAFEWATCH_API__JWT_SECRET": "test-secret-" + uid}
    cli = [sys.executable, "-m", "safewatch.cli"]
    children = {name: Child([*cli, name], env) for name in ("ingest", "alerts", "api")}
    try:
        children["ingest"].await_line('"subscribed"', 30)
        children["alerts"].await_line('"subscribed"', 30)
        children["api"].await_line("Application startup complete", 30)
        yield {"api": f"http://127.0.0.1:{api_port}", "children": children}
    finally:
        for child in children.values():
            child.proc.terminate()
        for name, child in children.items():
            code = child.proc.wait(timeout=20)
            # uvicorn re-raises the signal it caught once its graceful shutdown is complete.
            clean = (0, -signal.SIGTERM) if name == "api" else (0,)
            assert code in clean, f"{name} exited {code} on SIGTERM:\n{''.join(child.lines[-20:])}"


def _next_alert_notification(conn: psycopg.Connection, timeout: float) -> int:
    for note in conn.notifies(timeout=timeout, stop_after=1):
        return int(note.payload)
    raise AssertionError(f"no alert change within {timeout} s")


def test_overpressure_alert_opens_and_resolves(settings, fleet, processes, pg_url, uid):
    registry = fleet(40)
    # A steam boiler (11xx): its stuck controller lifts the safety valve (hot-water boilers differ).
    boiler = next(e for e in registry.equipment if e["variety"].startswith("11"))
    league = {g["id"]: g["league_code"] for g in registry.gateways}
    # The boiler and a few neighbours on their own gateways: 750 messages in one burst stay well inside
    # the 1,000 a stock Mosquitto queues per subscriber (the machine's broker may run its defaults).
    chosen = [boiler, *[e for e in registry.equipment if e is not boiler][:4]]
    sim_eq = [SimEquipment(e["code"], e["category"], e["rated"], e["gateway_id"], league[e["gateway_id"]])
              for e in chosen]
    with psycopg.connect(pg_url) as c:
        upsert_user(c, f"insp-{uid}", "pw-" + uid, "region_inspector", "150000")
    listener = psycopg.connect(pg_url, autocommit=True)
    listener.execute("LISTEN safewatch_alerts")

    sim = Fleet(settings, sim_eq, seed=11, client_prefix=f"sim-{uid}")
    sim.connect()
    start = int(time.time() * 1000) - 170_000  # event time runs faster than the wall clock
    # 70 s of fault: at the morning peak of steam demand (about 09:00 in Inner Mongolia) the pressure
    # takes up to 65 s to reach the lower safety valve (50 s was too short then); 80 s more to fall back.
    fault = Fault(boiler["code"], "overpressure", start + 10_000, start + 80_000)
    for tick in range(150):
        sim.tick(start + tick * 1000, 1.0, [fault])
    assert sim.flush() == 0
    sim.close()

    try:
        _next_alert_notification(listener, 30)
    except AssertionError:
        print("".join(processes["children"]["alerts"].lines[-30:]))
        raise
    api = httpx.Client(base_url=processes["api"], timeout=10)
    token = api.post("/api/v1/auth/token", data={"username": f"insp-{uid}", "password": "pw-" + uid}).json()
    api.headers["Authorization"] = f"Bearer {token['access_token']}"
    # The boiler's own protections report too (the safety valve lifts): those are event alerts, and
    # events and telemetry are evaluated independently, so either may be raised first.
    everything = wait_until(lambda: api.get("/api/v1/alerts", params={"equipment": boiler["code"]}).json()["items"],
                            lambda items: {"event.safety_valve_lift", "boiler.drum_pressure.high"}
                            <= {a["rule_key"] for a in items}, what="pressure and safety-valve alerts")
    listed = [a for a in everything if a["rule_key"].startswith("boiler.drum_pressure.")]
    # The high limit (0.96 × rated) and then the high-high (the lower safety valve) fire.
    alert_id = next(a["id"] for a in listed if a["rule_key"] == "boiler.drum_pressure.high")
    assert {a["rule_key"] for a in listed} <= {"boiler.drum_pressure.high", "boiler.drum_pressure.high_high"}
    assert all(a["division_code"] == boiler["banner_code"] and a["level"] == "banner" for a in listed)

    # Both the high and high-high rules may fire; wait until every alert of the boiler has cleared.
    def boiler_alerts() -> list[dict]:
        items = api.get("/api/v1/alerts", params={"equipment": boiler["code"]}).json()["items"]
        return [a for a in items if a["rule_key"].startswith("boiler.drum_pressure.")]

    deadline = time.monotonic() + 30
    alerts = boiler_alerts()
    while any(a["active"] for a in alerts):
        assert time.monotonic() < deadline, f"alerts never cleared: {alerts}"
        _next_alert_notification(listener, deadline - time.monotonic())
        alerts = boiler_alerts()
    assert all(a["state"] == "returned_unack" and a["cleared_at"] for a in alerts)
    detail = api.get(f"/api/v1/alerts/{alert_id}").json()
    assert [t["to_state"] for t in detail["transitions"]] == ["active_unack", "returned_unack"]
    # Acknowledging a returned alert closes it, with the person recorded.
    acked = api.post(f"/api/v1/alerts/{alert_id}/acknowledge", json={"reason": "checked on site"}).json()
    assert acked["state"] == "normal" and acked["transitions"][-1]["actor"] == f"insp-{uid}"
    listener.close()
