"""The chaos run: a counted stream through the whole pipeline while every process and service is hurt.

A private PostgreSQL and a private Mosquitto (the shipped configuration); `safewatch ingest`, `alerts` and
`notifier` as processes; a fleet from the demo registry; a gateway-like publisher (QoS 1, waits for its acks,
and after a reconnect re-sends what the broker acknowledged in the last ``resend_s`` seconds, as
docs/mqtt-contract.md asks of gateways) sending one message per equipment per tick, with over-pressure
breaches of known steam boilers; bad messages sprinkled in (NUL in an equipment code, a 130,000-entry
array, NUL in an event's details). Faults, in sequence, each once the stream has made some progress:
kill -9 of the ingest, of the alert worker and of the notifier, a PostgreSQL restart, a PostgreSQL outage,
kill -9 of the broker.

Checks (`Result.failures`): no process exits but those the harness killed (it restarts the killed ones at
once, and the others too so the run can go on, counting them); every valid reading stored exactly once;
every bad message dead-lettered exactly once and nothing else dead-lettered; the ingest's peak RSS within
``rss_bound_mib``; the alerts are exactly one ``boiler.drum_pressure.high`` per breached boiler, each
cleared after its breach (0 missed, 0 invented).

Used by ``python -m bench.chaos`` (long) and tests/system/test_chaos.py (short).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import psutil
import psycopg

from bench.ingest.instances import PrivateBroker, PrivatePostgres, free_port
from safewatch.contract import Kind, build_topic
from safewatch.db import one_row
from safewatch.registry.divisions import load_divisions, parse_divisions, shipped_divisions_text
from safewatch.registry.seed import demo_registry, insert_registry
from safewatch.schema.migrate import migrate
from safewatch.settings import MqttSettings

STORED = """
SELECT e.code, m.key, (extract(epoch FROM r.time) * 1000)::bigint
FROM readings r JOIN equipment e ON e.id = r.equipment_id JOIN metrics m ON m.id = r.metric_id
"""
COUNT_READINGS = "SELECT count(*) FROM readings"
DEAD_LETTERS_BY_PAYLOAD = "SELECT md5(payload), count(*) FROM dead_letters GROUP BY 1"
# Events whose free text held NUL: kept, the text escaped (docs/mqtt-contract.md), so they are counted here.
NOTES_OF_ESCAPED_EVENTS = """
SELECT details ->> 'note', count(*) FROM events WHERE type = 'door_close_fault' AND details ->> 'note' LIKE 'bad%%'
GROUP BY 1
"""
ALERTS = """
SELECT e.code, a.rule_key, a.cleared_at IS NOT NULL FROM alerts a JOIN equipment e ON e.id = a.equipment_id
ORDER BY a.id
"""
BREACH_RULE = "boiler.drum_pressure.high"
BREACH_TICKS = 20  # 20 s of event time at rated pressure: the high alarm waits 5 s, high-high is not reached
MAX_UNEXPECTED_RESTARTS = 3  # a process that keeps crashing is left down (the run still ends, and fails)


@dataclass(frozen=True)
class ChaosConfig:
    equipment: int = 100  # from the demo registry (seed 9: 8 steam boilers at 100)
    ticks: int = 400  # one message per equipment a tick; a tick is 1 s of event time
    tick_s: float = 0.1  # wall seconds a tick
    outage_s: float = 10.0  # the PostgreSQL outage
    resend_s: float = 30.0  # what the publisher re-sends after a reconnect: the 30 s docs/mqtt-contract.md asks
    rss_bound_mib: float = 512.0
    wait_s: float = 90.0  # the longest wait for any one condition before it counts as failed
    seed: int = 9
    bad_messages: bool = True  # False: the faults alone (to tell the harness's checks from the input's)
    broker_kill: bool = True  # False: every fault but the broker's kill -9


# -- processes --------------------------------------------------------------------------------------------
class Child:
    """A `safewatch` process with its log in a file; restarted by the supervisor when it exits."""

    def __init__(self, name: str, env: dict[str, str], logs: Path, ready: str) -> None:
        self.name, self.env, self.ready = name, env, ready
        self.log = logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed = False  # the harness killed it: its exit is expected
        self.starts = 0
        self.unexpected: list[str] = []  # "exit code N: last log lines" per unexpected exit
        self.lock = threading.Lock()

    def start(self, timeout: float) -> bool:
        with self.lock:
            offset = self.log.stat().st_size if self.log.exists() else 0
            with self.log.open("ab") as out:
                self.proc = subprocess.Popen([sys.executable, "-m", "safewatch.cli", self.name], env=self.env,
                                             stdout=out, stderr=subprocess.STDOUT)
            self.starts += 1
            self.killed = False
        return _await_in_file(self.log, self.ready, offset, timeout, self.proc)

    def kill9(self) -> None:
        with self.lock:
            self.killed = True
            if self.proc is not None:  # None: it had exited by itself and was left down
                self.proc.kill()
                self.proc.wait(30)

    def tail(self, n: int = 12) -> str:
        return "".join(self.log.read_text(errors="replace").splitlines(keepends=True)[-n:])

    def exited_unexpectedly(self) -> bool:
        """Whether the process is gone without the harness having killed it (recorded once per exit)."""
        with self.lock:
            if self.proc is None or self.killed or self.proc.poll() is None:
                return False
            self.unexpected.append(f"exit code {self.proc.returncode}: {self.tail()}")
            self.proc = None
            return True

    def stop(self) -> int | None:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                return None if self.proc is None else self.proc.returncode
            self.killed = True  # the exit that follows is ours
            self.proc.terminate()
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(30)


def _await_in_file(path: Path, needle: str, offset: int, timeout: float,
                   proc: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError), path.open("rb") as f:
            f.seek(offset)
            if needle.encode() in f.read():
                return True
        if proc is not None and proc.poll() is not None:
            return False
        tick.wait(0.05)
    return False


# -- the stream -------------------------------------------------------------------------------------------
@dataclass
class Equipment:
    code: str
    category: str
    topic: str
    rated: dict[str, float]
    steam: bool  # a steam boiler (drum pressure rated): breaches are made on these


def values(eq: Equipment, tick: int, breach: bool) -> dict[str, float]:
    """In-range readings that move (the flatline rules watch 10 minutes), or a breach at rated pressure."""
    wobble = math.sin(tick / 7.0)
    if eq.category == "3000":
        return {"speed": round(0.5 * eq.rated["rated_speed"] * (1 + 0.05 * wobble), 4), "floor": float(tick % 5 + 1)}
    if eq.category == "2000":
        return {"vessel_pressure": round(0.5 * eq.rated["design_pressure"] * (1 + 0.02 * wobble), 4),
                "vessel_temp": round(30 + wobble, 3)}
    pressure = eq.rated["rated_pressure"] * (1.0 if breach else 0.8 * (1 + 0.01 * wobble))
    return {"drum_pressure": round(pressure, 4), "drum_level": round(3 * wobble, 3)}


class Gateways:
    """One QoS 1 publisher for the fleet's gateways, behaving as the contract asks of a gateway.

    paho re-sends what was not acknowledged after a reconnect; on top of that, what the broker acknowledged
    in the last ``resend_s`` seconds before the connection was lost is published again (a kill -9 of the
    broker loses what it acknowledged since its last snapshot; ingest stores a reading once however often).
    """

    def __init__(self, url: str, *, client_id: str, resend_s: float) -> None:
        self.resend_s = resend_s
        self._lock = threading.Condition()
        self._pending: dict[int, tuple[str, bytes]] = {}
        self._acked_early: set[int] = set()
        self._recent: deque[tuple[float, str, bytes]] = deque()
        self._lost_at: float | None = None
        self.published = 0
        self.resent = 0
        settings = MqttSettings(url=url)
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv5)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.connect(settings.host, settings.port, 30)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        # Not under our lock: paho calls on_publish holding its own, which `publish` takes too.
        info = self.client.publish(topic, payload, qos=1)
        self._sent(info.mid, topic, payload)
        self.published += 1

    def _sent(self, mid: int, topic: str, payload: bytes) -> None:
        with self._lock:
            if mid in self._acked_early:  # the PUBACK came before `publish` returned
                self._acked_early.discard(mid)
                self._recent.append((time.monotonic(), topic, payload))
            else:
                self._pending[mid] = (topic, payload)

    def _on_publish(self, _client: object, _userdata: object, mid: int, *_rest: object) -> None:
        now = time.monotonic()
        with self._lock:
            sent = self._pending.pop(mid, None)
            if sent is None:
                self._acked_early.add(mid)
            else:
                self._recent.append((now, *sent))
            while self._recent and self._recent[0][0] < now - 4 * self.resend_s:
                self._recent.popleft()
            self._lock.notify_all()

    def _on_disconnect(self, *_args: object) -> None:
        with self._lock:
            if self._lost_at is None:
                self._lost_at = time.monotonic()

    def _on_connect(self, client: paho.Client, *_args: object) -> None:
        with self._lock:
            if self._lost_at is None:
                return
            again = [(t, p) for acked_at, t, p in self._recent if acked_at >= self._lost_at - self.resend_s]
            self._lost_at = None
            self.resent += len(again)
        for topic, payload in again:
            self._sent(client.publish(topic, payload, qos=1).mid, topic, payload)

    def wait_acked(self, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: not self._pending, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- bad messages -----------------------------------------------------------------------------------------
def bad_messages(fleet: list[Equipment], league_topic: Callable[[str, Kind], str], n: int) -> list[tuple[str, bytes]]:
    """The ``n``-th round of bad messages (each unique): NUL in an equipment code, 130,000 bad entries in
    one 254 KiB message (both dead-lettered), NUL in an event's details (kept with the text escaped; the
    event ends a condition that was never raised, so it makes no alert)."""
    now = int(time.time() * 1000) - 60_000 + n
    gateway_topic = fleet[0].topic
    elevator = next(e for e in fleet if e.category == "3000")
    nul_code = b'{"ts":%d,"readings":[{"equipment":"AB\\u0000CD%d","values":{"speed":1}}]}' % (now, n)
    many = b'{"ts":%d,"readings":[' % now + b"0," * 129_999 + b"0]}"
    nul_event = orjson.dumps({"equipment": elevator.code, "ts": now, "type": "door_close_fault", "active": False,
                              "details": {"note": f"bad\u0000#{n}"}})
    return [(gateway_topic, nul_code), (gateway_topic, many),
            (league_topic(elevator.code, Kind.EVENT), nul_event)]


# -- the run ----------------------------------------------------------------------------------------------
@dataclass
class Result:
    """What the run saw; `failures` says which checks failed and why."""

    readings_sent: int = 0
    readings_stored_rows: int = 0
    lost: int = 0
    unexpected_readings: int = 0
    duplicated: int = 0
    bad_sent: int = 0
    # (kind, rows) per bad message, 1 each: dead letters, or for the kept event with NUL in its details, events
    bad_rows: list[tuple[str, int]] = field(default_factory=list)
    other_dead_letters: int = 0
    peak_rss_mib: float = 0.0
    rss_bound_mib: float = 0.0
    expected_alerts: set[str] = field(default_factory=set)
    breaches: dict[str, tuple[int, int]] = field(default_factory=dict)  # code → (first tick, last tick)
    alerts: list[tuple[str, str, bool]] = field(default_factory=list)
    unexpected_exits: dict[str, list[str]] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)  # what was done, with the time it took
    waits_failed: list[str] = field(default_factory=list)
    resent: int = 0
    duration_s: float = 0.0

    def failures(self) -> list[str]:
        out = [f"{name} exited {len(exits)} time(s) without being killed; first: {exits[0]}"
               for name, exits in self.unexpected_exits.items() if exits]
        out += [f"gave up waiting: {w}" for w in self.waits_failed]
        if self.lost or self.unexpected_readings or self.duplicated:
            out.append(f"readings: {self.lost:,} of {self.readings_sent:,} lost, {self.unexpected_readings:,} "
                       f"not sent, {self.duplicated:,} stored twice")
        wrong = [(kind, rows) for kind, rows in self.bad_rows if rows != 1]
        if wrong or self.other_dead_letters:
            out.append(f"bad messages not dead-lettered (or kept) exactly once (kind, rows): {wrong}; "
                       f"{self.other_dead_letters:,} rows for other payloads")
        if self.peak_rss_mib > self.rss_bound_mib:
            out.append(f"ingest peak RSS {self.peak_rss_mib:.0f} MiB over the bound of {self.rss_bound_mib:.0f} MiB")
        raised = [code for code, rule, _ in self.alerts if rule == BREACH_RULE]
        missed = self.expected_alerts - set(raised)
        invented = [(c, r) for c, r, _ in self.alerts if r != BREACH_RULE or c not in self.expected_alerts]
        twice = {c for c in raised if raised.count(c) > 1}
        uncleared = [c for c, r, cleared in self.alerts if r == BREACH_RULE and not cleared]
        if missed or invented or twice or uncleared:
            out.append(f"alerts: missed {sorted(missed)} (breach ticks {[self.breaches[c] for c in sorted(missed)]}), "
                       f"invented {invented}, raised twice {sorted(twice)}, "
                       f"not cleared {uncleared}")
        return out

    def summary(self) -> str:
        bad = ", ".join(f"{k}: {v}" for k, v in self.bad_rows)
        return (f"readings sent {self.readings_sent:,}, stored rows {self.readings_stored_rows:,} "
                f"(lost {self.lost:,}, twice {self.duplicated:,}); bad messages {self.bad_sent} -> dead letters "
                f"{bad} (+{self.other_dead_letters} others); ingest peak RSS {self.peak_rss_mib:.0f} MiB (bound "
                f"{self.rss_bound_mib:.0f}); alerts {len(self.alerts)} for {len(self.expected_alerts)} breaches; "
                f"re-sent after reconnects {self.resent:,}; unexpected exits "
                f"{sum(map(len, self.unexpected_exits.values()))}; {self.duration_s:.0f} s\n  faults: "
                + "; ".join(self.faults))


def _count(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=2) as c:
            return int(one_row(c.execute(COUNT_READINGS))[0])
    except psycopg.OperationalError:
        return -1


class Run:
    """One chaos run (a context manager: everything it started is stopped and removed on exit)."""

    def __init__(self, cfg: ChaosConfig, log: Callable[[str], None] = lambda _s: None) -> None:
        self.cfg, self.say = cfg, log
        self.result = Result(rss_bound_mib=cfg.rss_bound_mib)
        self.stack = contextlib.ExitStack()
        self.logs = Path(tempfile.mkdtemp(prefix="sw-chaos-"))
        self.children: dict[str, Child] = {}
        self.sent: set[tuple[str, str, int]] = set()
        self.ticks_done = 0
        self._stop = threading.Event()

    def __enter__(self) -> Run:
        self.postgres = self.stack.enter_context(PrivatePostgres())
        self.broker = self.stack.enter_context(PrivateBroker(shipped=True))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for child in self.children.values():
            child.stop()
        self.stack.close()

    # -- setup
    def _setup_database(self) -> list[Equipment]:
        url = self.postgres.create_database("chaos")
        migrate(url, storage="plain")
        registry = demo_registry(parse_divisions(shipped_divisions_text()), self.cfg.equipment, seed=self.cfg.seed,
                                 gateway_prefix="chaos")
        later = dt.date.today() + dt.timedelta(days=300)
        for e in registry.equipment:  # no inspection falls due during the run: only the stream raises alerts
            e["next_inspection_on"] = later
        with psycopg.connect(url) as c:
            load_divisions(c)
            insert_registry(c, registry)
        self.db_url = url
        league = {g["id"]: g["league_code"] for g in registry.gateways}
        self.topic_of = {e["code"]: (league[e["gateway_id"]], e["gateway_id"]) for e in registry.equipment}
        fleet = []
        for e in registry.equipment:
            steam = e["category"] == "1000" and "rated_pressure" in e["rated"]
            if e["category"] == "1000" and not steam:
                continue  # hot-water boilers: their metrics differ; the stream keeps to the three kinds above
            fleet.append(Equipment(e["code"], e["category"], self._topic(e["code"], Kind.TELEMETRY),
                                   {k: float(v) for k, v in e["rated"].items()}, steam))
        return fleet

    def _topic(self, code: str, kind: Kind) -> str:
        league, gateway = self.topic_of[code]
        return build_topic(league, gateway, kind)

    def _start_children(self) -> None:
        base = {**os.environ, "SAFEWATCH_DB__URL": self.db_url, "SAFEWATCH_MQTT__URL": self.broker.url,
                "SAFEWATCH_MQTT__SESSION_EXPIRY_S": "3600", "SAFEWATCH_LOG_JSON": "true",
                "SAFEWATCH_INGEST__WORKER_ID": "chaos-ingest", "SAFEWATCH_INGEST__SHARE_GROUP": "chaos",
                "SAFEWATCH_ALERTS__WORKER_ID": "chaos-alerts", "SAFEWATCH_NOTIFIER__WORKER_ID": "chaos-notifier",
                "SAFEWATCH_INGEST__METRICS_PORT": str(free_port()), "SAFEWATCH_ALERTS__METRICS_PORT": str(free_port()),
                "SAFEWATCH_NOTIFIER__METRICS_PORT": str(free_port()), "SAFEWATCH_NOTIFIER__POLL_S": "0.5"}
        ready = {"ingest": '"subscribed"', "alerts": '"subscribed"', "notifier": '"notifier started"'}
        for name, needle in ready.items():
            self.children[name] = Child(name, base, self.logs, needle)
            if not self.children[name].start(60):
                raise RuntimeError(f"{name} did not start:\n{self.children[name].tail(30)}")

    # -- background: supervision and RSS
    def _supervise(self) -> None:
        tick = threading.Event()
        while not self._stop.is_set():
            for child in self.children.values():
                if child.exited_unexpectedly() and len(child.unexpected) <= MAX_UNEXPECTED_RESTARTS:
                    child.start(60)
            ingest = self.children["ingest"].proc
            if ingest is not None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    rss = psutil.Process(ingest.pid).memory_info().rss / 2**20
                    self.result.peak_rss_mib = max(self.result.peak_rss_mib, rss)
            tick.wait(0.1)

    def _publish_stream(self, fleet: list[Equipment], gateways: Gateways, breaches: dict[str, range]) -> None:
        cfg = self.cfg
        # Event time runs 1 s a tick, ending a minute before the wall clock (the ingest refuses the future).
        start = int(time.time() * 1000) - int(cfg.ticks * max(0.0, 1 - cfg.tick_s) * 1000) - 60_000
        began = time.monotonic()
        tick_wait = threading.Event()
        for tick in range(cfg.ticks):
            ts = start + tick * 1000
            for eq in fleet:
                vals = values(eq, tick, tick in breaches.get(eq.code, ()))
                gateways.publish(eq.topic, orjson.dumps({"ts": ts, "readings": [{"equipment": eq.code,
                                                                                  "values": vals}]}))
                self.sent.update((eq.code, k, ts) for k in vals)
            self.ticks_done = tick + 1
            tick_wait.wait(max(0.0, began + (tick + 1) * cfg.tick_s - time.monotonic()))  # pacing, in wall time

    def _wait(self, what: str, done: Callable[[], bool], timeout: float | None = None) -> bool:
        timeout = timeout or self.cfg.wait_s
        if self.result.waits_failed:  # the run has already failed: finish it quickly, reporting what it can
            timeout = min(timeout, 10.0)
        deadline = time.monotonic() + timeout
        tick = threading.Event()
        while not done():
            if time.monotonic() > deadline:
                self.result.waits_failed.append(what)
                self.say(f"gave up waiting: {what}")
                return False
            tick.wait(0.1)
        return True

    def _at_progress(self, share: float) -> None:
        """Wait until the stream has published ``share`` of its ticks and the ingest has stored about as much."""
        self._wait(f"{share:.0%} of the stream published", lambda: self.ticks_done >= share * self.cfg.ticks,
                   timeout=self.cfg.ticks * self.cfg.tick_s * 3 + 60)
        target = 0.9 * len(self.sent)
        self._wait(f"{share:.0%} of the stream stored", lambda: _count(self.db_url) >= target)

    def _fault(self, what: str, action: Callable[[], None]) -> None:
        started, tick = time.monotonic(), self.ticks_done
        action()
        self.result.faults.append(f"{what} (at tick {tick}, {time.monotonic() - started:.1f} s)")
        self.say(f"fault: {what}")

    def _kill9_and_restart(self, name: str) -> None:
        child = self.children[name]
        child.kill9()
        if not child.start(60):
            self.result.waits_failed.append(f"{name} to start again after kill -9")

    def _outage(self) -> None:
        self.postgres.stop("immediate")
        self._stop.wait(self.cfg.outage_s)  # the outage's length is the fault itself
        self.postgres.start()

    def _kill9_broker(self) -> None:
        self.broker.kill()
        self.broker.start()

    def run(self) -> Result:
        began = time.monotonic()
        cfg = self.cfg
        fleet = self._setup_database()
        self._start_children()
        threading.Thread(target=self._supervise, daemon=True).start()
        steam = [e for e in fleet if e.steam]
        if not steam:
            raise RuntimeError("the fleet has no steam boiler: raise ChaosConfig.equipment")
        # Breaches spread over the run, so that faults fall in the middle of some of them.
        span = cfg.ticks - 2 * BREACH_TICKS
        breaches = {e.code: range(BREACH_TICKS + span * (k + 1) // (len(steam) + 1) - BREACH_TICKS // 2,
                                  BREACH_TICKS + span * (k + 1) // (len(steam) + 1) + BREACH_TICKS // 2)
                    for k, e in enumerate(steam)}
        self.result.expected_alerts = set(breaches)
        self.result.breaches = {code: (r.start, r.stop - 1) for code, r in breaches.items()}
        gateways = Gateways(self.broker.url, client_id="chaos-gateways", resend_s=cfg.resend_s)
        bad_pub = Gateways(self.broker.url, client_id="chaos-bad", resend_s=cfg.resend_s)
        stream = threading.Thread(target=self._publish_stream, args=(fleet, gateways, breaches), daemon=True)
        stream.start()
        bad_sent: list[tuple[str, bytes]] = []

        def send_bad() -> None:
            if not cfg.bad_messages:
                return
            for topic, payload in bad_messages(fleet, self._topic, len(bad_sent)):
                bad_pub.publish(topic, payload)
                bad_sent.append((topic, payload))

        plan: list[tuple[float, str, Callable[[], None]]] = [
            (0.05, "bad messages", send_bad),
            (0.10, "kill -9 of the ingest", lambda: self._kill9_and_restart("ingest")),
            (0.20, "kill -9 of the alert worker", lambda: self._kill9_and_restart("alerts")),
            (0.25, "bad messages", send_bad),
            (0.30, "kill -9 of the notifier", lambda: self._kill9_and_restart("notifier")),
            (0.40, "PostgreSQL restart", self.postgres.restart),
            (0.50, f"PostgreSQL outage of {cfg.outage_s:.0f} s", self._outage),
            (0.60, "bad messages", send_bad),
            (0.70, "kill -9 of the broker", self._kill9_broker),
        ]
        if not cfg.broker_kill:
            plan = [step for step in plan if step[2] != self._kill9_broker]
        for share, what, action in plan:
            self._at_progress(share)
            self._fault(what, action)
        stream.join(cfg.ticks * cfg.tick_s * 3 + 120)
        for pub, what in ((gateways, "the stream"), (bad_pub, "the bad messages")):
            self._wait(f"the broker to acknowledge all of {what}", partial(pub.wait_acked, 0.5))
        expected = len(self.sent)
        self._wait("every reading stored", lambda: _count(self.db_url) >= expected)
        self._wait("an alert per breach, cleared", lambda: self._breach_alerts_cleared(len(breaches)))
        self._collect(bad_sent, gateways.resent + bad_pub.resent)
        gateways.close()
        bad_pub.close()
        self._stop.set()
        for name, child in self.children.items():
            code = child.stop()
            if code not in (0, None):
                child.unexpected.append(f"exit code {code} on SIGTERM: {child.tail()}")
            self.result.unexpected_exits[name] = child.unexpected
        self.result.duration_s = time.monotonic() - began
        return self.result

    def _breach_alerts_cleared(self, n: int) -> bool:
        try:
            with psycopg.connect(self.db_url, connect_timeout=2) as c:
                rows = c.execute(ALERTS).fetchall()
        except psycopg.OperationalError:
            return False
        return sum(1 for _, rule, cleared in rows if rule == BREACH_RULE and cleared) >= n

    def _collect(self, bad_sent: list[tuple[str, bytes]], resent: int) -> None:
        r = self.result
        with psycopg.connect(self.db_url) as c:
            rows = c.execute(STORED).fetchall()
            letters: dict[str, int] = dict(c.execute(DEAD_LETTERS_BY_PAYLOAD).fetchall())
            notes: dict[str, int] = dict(c.execute(NOTES_OF_ESCAPED_EVENTS).fetchall())
            r.alerts = [(code, rule, bool(cleared)) for code, rule, cleared in c.execute(ALERTS)]
        stored = set(rows)
        r.readings_sent, r.readings_stored_rows = len(self.sent), len(rows)
        r.lost, r.unexpected_readings = len(self.sent - stored), len(stored - self.sent)
        r.duplicated = len(rows) - len(stored)
        kinds = ("NUL in an equipment code", "130,000 bad entries", "NUL in event details")
        r.bad_sent = len(bad_sent)
        digests = set()
        for n, (_topic, payload) in enumerate(bad_sent):
            digest = hashlib.md5(payload).hexdigest()
            digests.add(digest)
            if n % 3 == 2:  # kept: stored once, its NUL escaped, and no dead letter
                kept = [int(k) for note, k in notes.items() if note.endswith(f"#{n - 2}") and "\x00" not in note]
                r.bad_rows.append((kinds[2], sum(kept) if not letters.get(digest) else -1))
                continue
            r.bad_rows.append((kinds[n % 3], int(letters.get(digest, 0))))
        r.other_dead_letters = sum(int(v) for k, v in letters.items() if k not in digests)
        r.resent = resent


@contextlib.contextmanager
def chaos(cfg: ChaosConfig, log: Callable[[str], None] = lambda _s: None) -> Iterator[Run]:
    with Run(cfg, log) as run:
        yield run


def describe(cfg: ChaosConfig) -> dict[str, Any]:
    return {"equipment": cfg.equipment, "ticks": cfg.ticks, "tick_s": cfg.tick_s, "outage_s": cfg.outage_s,
            "resend_s": cfg.resend_s, "rss_bound_mib": cfg.rss_bound_mib}
