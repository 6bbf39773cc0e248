"""A notifier killed with kill -9 in the middle of slow deliveries, and another taking over (issue 21, point 5).

One trial, on a database holding an alert (``probe_alert`` makes one): ``rows`` webhook notifications are
written through the outbox's own ``enqueue``; notifier A (a real process, ``python -m safewatch.cli
notifier``) posts them to a receiver in this process that holds every response until told. Two held
posts are released and must be recorded at once; then notifier B starts beside A (both alive: no row may
be posted twice meanwhile), A is killed with SIGKILL while four posts are held, and every response is
released. The trial returns what the receiver counted by Idempotency-Key and the delays:

- ``takeover_s``: kill → B's first post of each row A was posting (the delay the kill caused);
- ``normal_s``: release → first post of the rows nobody had claimed yet (a claim and a post when a
  sender frees up: the normal latency of the same machine at the same moment).

With ``restart=True`` B starts only after the kill, as a supervisor would restart the notifier.

Synchronised on conditions only (posts held, rows recorded), never on sleeps. Used by
tests/integration/notify/test_notifier_kill.py (one trial) and ``python -m bench.notify kill`` (many).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from alerts.outbox import Recipient, enqueue, wake_senders
from bench.ingest.instances import free_port
from safewatch.db import one_row

REPO = Path(__file__).resolve().parents[2]
SENDERS = 4  # each notifier's sender threads: how many posts it holds at once
T = TypeVar("T")

# The open probe alert of the database, made once (one open alert per equipment and rule).
PROBE_ALERT = """
WITH found AS (SELECT id FROM alerts WHERE rule_key = 'event.kill_probe' AND closed_at IS NULL LIMIT 1),
made AS (
    INSERT INTO alerts (equipment_id, rule_key, severity, state, active, division_code, league_code, message,
                        opened_at, updated_at)
    SELECT e.id, 'event.kill_probe', 'major', 'active_unack', true, e.banner_code, d.league_code, 'kill -9 probe',
           now(), now()
    FROM equipment e JOIN divisions d ON d.code = e.banner_code
    WHERE NOT EXISTS (SELECT 1 FROM found)
    ORDER BY e.id LIMIT 1
    RETURNING id)
SELECT id FROM found UNION ALL SELECT id FROM made
"""
SELECT_DELIVERED = "SELECT idempotency_key FROM outbox WHERE idempotency_key = ANY(%s) AND delivered_at IS NOT NULL"


def probe_alert(url: str) -> int:
    """An alert on the database's first equipment, for the trial's notifications to name (no timers)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(PROBE_ALERT).fetchone()
    assert row is not None, "the database holds no equipment: register one first"
    return int(row[0])


class HoldingReceiver:
    """A webhook receiver in threads: counts posts by Idempotency-Key and holds each response until released."""

    def __init__(self) -> None:
        self.posts: Counter[str] = Counter()
        self.arrivals: dict[str, list[float]] = {}  # key → arrival times (epoch s) of its posts
        self.held: set[str] = set()  # posts waiting for their response
        self._released: set[str] = set()
        self._open = False
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.headers.get("Idempotency-Key", "")
                with receiver._cond:
                    receiver.posts[key] += 1
                    receiver.arrivals.setdefault(key, []).append(time.time())
                    receiver.held.add(key)
                    receiver._cond.notify_all()
                    receiver._cond.wait_for(lambda: receiver._open or key in receiver._released)
                    receiver.held.discard(key)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # its sender was killed while the response was held

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def wait(self, done: Callable[[HoldingReceiver], bool], *, timeout: float, what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: done(self), timeout):
                raise AssertionError(f"{what} not seen within {timeout} s; held {sorted(self.held)}, "
                                     f"posts {dict(self.posts)}")

    def snapshot(self) -> tuple[set[str], Counter[str], dict[str, list[float]]]:
        """(posts held now, posts by key, arrival times by key), copied."""
        with self._cond:
            return set(self.held), Counter(self.posts), {k: list(v) for k, v in self.arrivals.items()}

    def release(self, keys: set[str]) -> None:
        with self._cond:
            self._released |= keys
            self._cond.notify_all()

    def open(self) -> None:
        """Answer every held post and every later one at once."""
        with self._cond:
            self._open = True
            self._cond.notify_all()

    def close(self) -> None:
        self.open()
        self._server.shutdown()
        self._server.server_close()


class NotifierProcess:
    """``safewatch notifier`` as its own process, as deployed; ready once it logs "notifier started"."""

    def __init__(self, url: str, name: str, **env: str) -> None:
        self.log = Path("/tmp") / f"safewatch-notifier-kill-{name}-{os.getpid()}-{uuid.uuid4().hex[:6]}.log"
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "SAFEWATCH_DB__URL": url, "SAFEWATCH_LOG_JSON": "true",
                    "SAFEWATCH_NOTIFIER__WORKER_ID": f"kill-{name}-{uuid.uuid4().hex[:6]}",
                    "SAFEWATCH_NOTIFIER__METRICS_PORT": str(free_port()),
                    "SAFEWATCH_NOTIFIER__SENDERS": str(SENDERS), "SAFEWATCH_NOTIFIER__GROUP_INTERVAL_S": "0",
                    # Claims of one row per free sender, so each notifier holds exactly SENDERS posts at once.
                    "SAFEWATCH_NOTIFIER__BATCH": str(SENDERS),
                    # Held responses must not time out: the receiver decides when each post ends.
                    "SAFEWATCH_NOTIFIER__WEBHOOK_TIMEOUT_S": "120", **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> NotifierProcess:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "safewatch.cli", "notifier"], env=self.env,
                                         cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        ready = threading.Event()
        deadline = time.monotonic() + timeout
        while b"notifier started" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the notifier did not start; its log:\n{self.log.read_text()[-2000:]}")
            ready.wait(0.05)  # polling its log file: the condition is the line, re-checked promptly
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def wait_for(observe: Callable[[], T], done: Callable[[T], bool], *, timeout: float, what: str) -> T:
    """The first observation for which ``done`` holds, re-checked promptly (a condition, not a sleep)."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while True:
        value = observe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s; last observed {value!r}")
        tick.wait(0.02)


@dataclass
class Trial:
    keys: list[str]
    recorded_before_kill: set[str]  # delivered and recorded while A was alive
    posted_by_a: set[str]  # held by A at the kill (in flight: may be posted again)
    posts: Counter[str]
    takeover_s: list[float] = field(default_factory=list)
    normal_s: list[float] = field(default_factory=list)
    delivered: set[str] = field(default_factory=set)
    b_ready_s: float = 0.0  # kill → B ready (0 when B was already running)


def enqueue_rows(url: str, alert_id: int, target: str, rows: int) -> list[str]:
    """``rows`` webhook notifications, due now, written as the notifier writes them; their idempotency keys."""
    seed = uuid.uuid4().hex[:8]
    with psycopg.connect(url) as conn:
        now = one_row(conn.execute("SELECT clock_timestamp()"))[0]
        alert: dict[str, Any] = {"id": alert_id, "rule_key": "event.kill_probe", "message": "kill -9 probe",
                                 "opened_at": now.isoformat(), "severity": "major"}
        for i in range(rows):
            enqueue(conn, recipient=Recipient("webhook", target, f"duty {i}"), alert=alert, alert_id=alert_id,
                    level="banner", division_code="150102", status="firing", group_key=f"kill-{seed}-{i}",
                    key_seed=f"kill{seed}{i}", now=now, group_interval_s=0, expires_s=3600)
        wake_senders(conn)
        return [r[0] for r in conn.execute("SELECT idempotency_key FROM outbox WHERE idempotency_key LIKE %s",
                                           (f"sw-kill{seed}%",))]


def kill_trial(url: str, alert_id: int, *, rows: int = 12, restart: bool = False, timeout: float = 60,
               **env: str) -> Trial:
    """One kill -9 of a notifier with posts in flight; see the module docstring.

    With ``restart``, B starts only after the kill (a supervisor restarting the notifier): the takeover then
    includes B's start-up, and ``b_ready_s`` says how long that took.
    """
    receiver = HoldingReceiver()
    a, b = NotifierProcess(url, "a", **env), NotifierProcess(url, "b", **env)

    def delivered() -> set[str]:
        with psycopg.connect(url) as conn:
            return {r[0] for r in conn.execute(SELECT_DELIVERED, (keys,))}

    try:
        keys = enqueue_rows(url, alert_id, receiver.url, rows)
        a.start()
        receiver.wait(lambda r: len(r.held) == SENDERS, timeout=timeout, what=f"A's first {SENDERS} posts")
        first = set(sorted(receiver.snapshot()[0])[:2])
        receiver.release(first)
        # Recorded one by one as they end, while A's other posts are still held.
        wait_for(delivered, lambda d: first <= d, timeout=timeout, what="the released posts recorded")
        receiver.wait(lambda r: len(r.held) == SENDERS, timeout=timeout, what="A's posts refilled")
        recorded_before = delivered()
        posted_by_a = receiver.snapshot()[0]
        if not restart:
            b.start()
            receiver.wait(lambda r: len(r.held) == 2 * SENDERS, timeout=timeout, what="B's posts beside A's")
        both_alive = receiver.snapshot()[1]
        killed_at = time.time()
        a.kill9()
        receiver.open()
        if restart:
            b.start()
        b_ready_s = time.time() - killed_at if restart else 0.0
        done = wait_for(delivered, lambda d: d == set(keys), timeout=timeout, what="every row delivered")
        b.stop()
        _, posts, arrivals = receiver.snapshot()
        trial = Trial(keys, recorded_before, posted_by_a, posts, delivered=done, b_ready_s=b_ready_s)
        trial.takeover_s = [min(t for t in arrivals[k] if t >= killed_at) - killed_at for k in posted_by_a
                            if any(t >= killed_at for t in arrivals[k])]
        trial.normal_s = [arrivals[k][0] - killed_at for k in keys if k not in both_alive]
        assert max(both_alive.values()) == 1, f"a row posted twice while both notifiers were alive: {both_alive}"
        return trial
    finally:
        a.stop()
        b.stop()
        receiver.close()
