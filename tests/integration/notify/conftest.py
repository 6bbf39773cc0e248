"""Real receivers and helpers for the notifier's tests.

- ``notify_url``: a fresh database per test module (plain PostgreSQL storage), so tests may edit the
  escalation policies without touching anyone else's.
- ``sink``: a real HTTP receiver in a thread; it can be taken down and brought back on the same port.
- ``notifier``: start/stop/restart the real notifier in-process (threads, private metrics registry).
- ``site``: one unit + gateway + equipment in a chosen banner; ``open_alert`` raises an alert through
  the alert engine's own store code (alerts/store.py), so the trigger sees what production writes.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import psycopg
import pytest
from prometheus_client import CollectorRegistry

from alerts.engine.lifecycle import Action, AlarmState, AlarmStatus, transition
from alerts.engine.step import ClearAlert, RaiseAlert
from alerts.notifier_worker import run as run_notifier
from alerts.store import EquipmentInfo, apply_effects
from safewatch.contract import Severity
from safewatch.db import one_row
from safewatch.settings import DbSettings, NotifierSettings, Settings
from tests.services import create_database, drop_database, process_url

_serial = itertools.count(1)


@pytest.fixture(scope="module")
def notify_url() -> Iterator[str]:
    # Plain PostgreSQL by default (what fresh machines have); SAFEWATCH_TEST_NOTIFY_STORAGE=timescale runs
    # the same tests over TimescaleDB storage (escalation's own tables are the same on both).
    url = create_database(storage=os.environ.get("SAFEWATCH_TEST_NOTIFY_STORAGE", "plain"))
    yield url
    drop_database(url)


RESET_RECEIVERS = """
DELETE FROM contact_channels;
DELETE FROM contacts;
UPDATE escalation_timers SET cancelled_at = clock_timestamp(), outcome = 'test reset'
    WHERE fired_at IS NULL AND cancelled_at IS NULL;
UPDATE outbox SET expired_at = clock_timestamp() WHERE delivered_at IS NULL AND expired_at IS NULL;
"""


@pytest.fixture(autouse=True)
def _fresh_receivers(notify_url: str) -> None:
    """Each test starts with no contacts and nothing pending from the previous test's receivers."""
    with psycopg.connect(notify_url) as conn:
        conn.execute(RESET_RECEIVERS)


@pytest.fixture
def nsettings(settings: Settings, notify_url: str) -> Settings:
    """Fast timings: the logic is the same as in production, only the numbers are small."""
    return settings.model_copy(update={
        "db": settings.db.model_copy(update={"url": notify_url}),
        "notifier": NotifierSettings(worker_id=f"{settings.alerts.worker_id}-n", metrics_port=None, poll_s=0.5,
                                     retry_base_s=0.2, retry_max_s=1.0, group_interval_s=0, claim_s=10,
                                     webhook_timeout_s=2, mqtt_timeout_s=5)})


# -- an HTTP receiver -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


class Sink:
    """A webhook receiver that records every request; `down()` closes its port, `up()` reopens it."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answers: dict[str, tuple[int, bytes]] = {}  # path → (status, body); 200 and no body otherwise
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._reserve(0)
        self.up()

    def _reserve(self, port: int) -> None:
        # Bound but not listening: connections are refused, and no other test can take the port meanwhile.
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port = self._sock.getsockname()[1]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink._cond:
                    sink.requests.append(Received(self.path, dict(self.headers), body, time.time()))
                    sink._cond.notify_all()
                status, answer = sink.answers.get(self.path, (200, b""))
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def up(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler(), bind_and_activate=False)
        server.socket.close()
        server.socket = self._sock
        server.server_activate()
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self._reserve(self.port)

    def close(self) -> None:
        self.down()
        self._sock.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self._cond:
            return [r for r in self.requests if r.path == path]

    def wait(self, done: Callable[[list[Received]], bool], timeout: float = 15,
             what: str = "requests") -> list[Received]:
        """Return the requests once ``done(requests)`` holds (checked on each arrival)."""
        with self._cond:
            if not self._cond.wait_for(lambda: done(list(self.requests)), timeout):
                raise AssertionError(f"{what} not received within {timeout} s; got {[r.path for r in self.requests]}")
            return list(self.requests)


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


# -- the notifier, in-process ---------------------------------------------------------------------

class Notifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._running: list[tuple[threading.Event, threading.Thread]] = []
        self.registry = CollectorRegistry()

    def start(self) -> Notifier:
        stop, ready = threading.Event(), threading.Event()
        self.registry = CollectorRegistry()  # the metrics of the latest start
        thread = threading.Thread(target=run_notifier, args=(self.settings,),
                                  kwargs={"stop": stop, "registry": self.registry, "ready": ready}, daemon=True)
        thread.start()
        assert ready.wait(20), "the notifier did not start within 20 s"
        self._running.append((stop, thread))
        return self

    def stop(self) -> None:
        for stop, _ in self._running:
            stop.set()
        for _, thread in self._running:
            thread.join(30)
            assert not thread.is_alive(), "the notifier did not stop within 30 s"
        self._running.clear()


@pytest.fixture
def notifier(nsettings: Settings, notify_url: str) -> Iterator[Callable[..., Notifier]]:
    made: list[Notifier] = []

    def make(settings: Settings | None = None) -> Notifier:
        settings = settings or nsettings
        if settings.db.url == notify_url:  # as production runs it: as the notifier's own database role
            settings = settings.model_copy(update={"db": DbSettings(url=process_url(notify_url, "notifier"))})
        n = Notifier(settings)
        made.append(n)
        return n

    yield make
    for n in made:
        n.stop()


# -- registry and alerts ----------------------------------------------------------------------------

INSERT_UNIT = """
INSERT INTO units (uscc, name, division_code) VALUES (%s, %s, %s) RETURNING id
"""
INSERT_GATEWAY = "INSERT INTO gateways (id, league_code) VALUES (%s, %s)"
INSERT_EQUIPMENT = """
INSERT INTO equipment (code, category, variety, unit_id, banner_code, gateway_id, address)
VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id
"""
SELECT_PLACE = "SELECT coalesce(league_code, code) FROM divisions WHERE code = %s"
INSERT_CONTACT = """
INSERT INTO contacts (division_code, name, kind, categories, min_severity) VALUES (%s, %s, %s, %s, %s) RETURNING id
"""
INSERT_CHANNEL = "INSERT INTO contact_channels (contact_id, channel, address, template) VALUES (%s, %s, %s, %s)"
SELECT_ALERT_STATUS = "SELECT state, active, latched FROM alerts WHERE id = %s FOR UPDATE"
# What the API's acknowledge does to the row (api/alerts/), without its other workflow columns.
UPDATE_ALERT_STATE = """
UPDATE alerts SET state = %(state)s, active = %(active)s, closed_at = CASE WHEN %(state)s = 'normal'
    THEN clock_timestamp() END WHERE id = %(id)s
"""
INSERT_TRANSITION = """
INSERT INTO alert_transitions (alert_id, from_state, to_state, actor, reason) VALUES (%s, %s, %s, %s, %s)
"""


@dataclass(frozen=True)
class Site:
    gateway_id: str
    equipment: list[EquipmentInfo]


def make_site(url: str, banner: str, *, n: int = 1, category: str = "3000") -> Site:
    """A unit with one gateway and ``n`` equipment of ``category`` in ``banner``."""
    k = next(_serial)
    token = f"{time.time_ns() % 10**9:09d}{k:03d}"
    with psycopg.connect(url) as conn:
        league = one_row(conn.execute(SELECT_PLACE, (banner,)))[0]
        uscc = "91" + banner + token[-9:] + "X"
        unit_id = one_row(conn.execute(INSERT_UNIT, (uscc, f"测试单位 {token}", banner)))[0]
        gw = f"ntest-{token}"
        conn.execute(INSERT_GATEWAY, (gw, league))
        infos = []
        for i in range(n):
            code = f"{category[0]}11015001{2020}{token[-5:]}{i:03d}"
            eq_id = one_row(conn.execute(INSERT_EQUIPMENT, (code, category, category[0] + "110", unit_id, banner, gw,
                                                            f"{banner} 测试路 {i} 号")))[0]
            infos.append(EquipmentInfo(eq_id, code, category, {}, banner, league, "in_use", gw))
    return Site(gw, infos)


def open_alert(url: str, eq: EquipmentInfo, *, severity: str = "major", rule_key: str = "event.test") -> int:
    """Raise an alert the way the alert worker does (alerts/store.py), in one transaction."""
    with psycopg.connect(url) as conn:
        effect = RaiseAlert(eq.id, rule_key, Severity(severity), None, None, None, int(time.time() * 1000),
                            f"测试 {rule_key}")
        (alert_id,) = apply_effects(conn, [effect], {eq.id: eq})
    return alert_id


def open_alerts(url: str, equipment: list[EquipmentInfo], *, severity: str = "major", per_message: int = 10,
                rule_key: str = "event.test") -> list[int]:
    """A flood as the alert worker writes it: one transaction per gateway message of ``per_message`` alerts."""
    ids: list[int] = []
    with psycopg.connect(url) as conn:
        for i in range(0, len(equipment), per_message):
            chunk = equipment[i:i + per_message]
            now_ms = int(time.time() * 1000)
            effects = [RaiseAlert(eq.id, rule_key, Severity(severity), None, None, None, now_ms, f"测试 {rule_key}")
                       for eq in chunk]
            with conn.transaction():
                ids += apply_effects(conn, effects, {eq.id: eq for eq in chunk})
    return ids


def clear_condition(url: str, eq: EquipmentInfo, *, rule_key: str = "event.test") -> None:
    with psycopg.connect(url) as conn:
        apply_effects(conn, [ClearAlert(eq.id, rule_key, None, None, int(time.time() * 1000))], {eq.id: eq})


def acknowledge(url: str, alert_id: int, *, actor: str = "inspector-1") -> None:
    """What POST /api/v1/alerts/{id}/acknowledge does, with its SQL."""
    with psycopg.connect(url) as conn:
        state, active, latched = one_row(conn.execute(SELECT_ALERT_STATUS, (alert_id,)))
        after = transition(AlarmStatus(AlarmState(state), active, latched), Action.ACKNOWLEDGE)
        conn.execute(UPDATE_ALERT_STATE, {"id": alert_id, "state": str(after.state), "active": after.active})
        conn.execute(INSERT_TRANSITION, (alert_id, state, str(after.state), actor, "on my way"))


def add_contact(url: str, division: str, name: str, channels: list[tuple[str, str, str | None]], *,
                kind: str = "duty_officer", categories: list[str] | None = None, min_severity: str = "warning") -> int:
    with psycopg.connect(url) as conn:
        cid = one_row(conn.execute(INSERT_CONTACT, (division, name, kind, categories, min_severity)))[0]
        for channel, address, template in channels:
            conn.execute(INSERT_CHANNEL, (cid, channel, address, template))
    return cid


def set_policy(url: str, severity: str, *, open_levels: list[str], max_level: str, banner_ack_s: int,
               league_ack_s: int, renotify_s: int | None = None) -> None:
    """Edit the severity's default policy (the API's PUT does the same; tested in test_api.py)."""
    with psycopg.connect(url) as conn:
        conn.execute("""UPDATE escalation_policies SET open_levels = %s, max_level = %s, banner_ack_s = %s,
                        league_ack_s = %s, renotify_s = %s WHERE severity = %s AND category IS NULL""",
                     (open_levels, max_level, banner_ack_s, league_ack_s, renotify_s, severity))


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()
