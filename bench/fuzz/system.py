"""The fuzz through the running system (issue 21): mutated messages mixed into a valid stream with breaches.

A private PostgreSQL and a private Mosquitto (the shipped configuration); `safewatch ingest` and
`safewatch alerts` as processes (supervised: an exit is counted, and the process started again so the run
goes on). The valid stream is a fleet's gateways reporting every second of event time (one message per
gateway a tick, all its equipment in it), steam boilers breaching their rated pressure in turn, now and then
an event or a status; about ``bad_share`` of its messages are spoiled by `bench.fuzz.mutations.mutate`
(U+0000 and control characters, lone surrogates, huge and deeply nested arrays, NaN/Infinity, duplicate
keys, wrong types, oversized numbers and payloads, truncation), and a few are published twice.

What must come out, each worked out in this process as the stream is made:

- the ingest: every message judged alone by the ingest's own pure code (`expected`); the readings it must
  store (compared key by key with the database at the end), the keys of the messages it must dead-letter;
- the alert worker: the pure engine over the same ordered stream, message by message and never stopped,
  its effects written by the same `write_effects` into a second database (bench/alerts/crash.py's
  reference); the worker's transitions must equal these, per (equipment, rule), in order.

Pass: 0 exits of either process; every valid reading stored once and nothing else; every bad message
dead-lettered once and nothing else; each process's peak RSS within ``rss_bound_mib``; the alert
transitions equal the reference's (0 missed, 0 invented). Used by ``python -m bench.fuzz system`` (long)
and tests/system/test_fuzz_system.py (short).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import orjson
import psutil
import psycopg

from alerts.decoding import decode_batch
from alerts.engine.checkpoint import unpack_shard
from alerts.store import load_equipment, shard_key, write_effects
from alerts.worker import Engine
from bench.alerts.crash import Transitions, mismatches, transitions
from bench.chaos.harness import Child, Equipment, values
from bench.fuzz.mutations import Fleet, expected, mutate
from bench.ingest.instances import PrivateBroker, PrivatePostgres, free_port
from bench.ingest.publisher import RawPublisher
from ingest.batching import RawMessage
from safewatch.contract import EVENT_TYPES, GatewayState, Kind, build_topic, encode_status
from safewatch.mqtt import Delivery
from safewatch.registry.divisions import load_divisions, parse_divisions, shipped_divisions_text
from safewatch.registry.seed import DemoRegistry, demo_registry, insert_registry
from safewatch.schema.migrate import migrate

BREACH_RULE = "boiler.drum_pressure.high"
BREACH_TICKS = 12  # 12 s at rated pressure: the high alarm's 5 s on-delay passes, high-high is not reached
# A reading's key as one integer: (equipment id × 64 + metric id) × 2^41 + epoch ms (ms fit 41 bits until 2039).
READING_KEYS = """
COPY (SELECT (equipment_id::bigint * 64 + metric_id) * 2199023255552 + (extract(epoch FROM time) * 1000)::bigint
      FROM readings) TO STDOUT
"""
DEAD_LETTERS = "SELECT message_key, count(*) FROM dead_letters GROUP BY 1"
COUNT_ALERTS = "SELECT count(*) FROM alerts WHERE rule_key = %s"
SELECT_SHARD = "SELECT packed FROM alert_engine_shard WHERE shard = %s"


@dataclass(frozen=True)
class SystemConfig:
    messages: int = 1_000_000  # distinct messages generated (the repeats come on top)
    bad_share: float = 0.5  # the share of them mutated
    repeat_share: float = 0.02  # the share published a second time (a gateway's re-send): stored once
    heavy: float = 0.1  # how often a mutation makes a message large, against the decoder fuzz's (see `mutate`)
    equipment: int = 300  # demo-registry fleet (about 100 gateways of 3)
    seed: int = 21
    chunk: int = 2_000  # messages generated, judged and published at a time
    backlog: int = 20_000  # messages the ingest may lag behind the publisher before publishing pauses
    rss_bound_mib: float = 512.0  # the ingest's stated bound (docs/decisions.md); the same asked of the alert worker
    checkpoint_s: float = 30.0  # the alert worker's shipped default
    wait_s: float = 900.0  # the longest wait for the end of the run's work
    verify_every: int = 100_000  # messages between two full checks (the run pauses until everything is done)


@dataclass
class Counts:
    """What was sent, what had to come out, what came out."""

    published: int = 0
    repeats: int = 0
    mutated: int = 0
    large: int = 0  # payloads over 64 KiB (huge arrays, over the 256 KiB limit)
    payload_bytes: int = 0
    verified: int = 0  # messages made when the last full check was done
    want_readings: int = 0
    stored_readings: int = 0
    missing_readings: int = 0
    unexpected_readings: int = 0
    want_dead_letters: int = 0
    dead_letters: int = 0
    missing_dead_letters: int = 0
    unexpected_dead_letters: int = 0
    dead_letters_twice: int = 0
    breaches: int = 0
    reference_transitions: int = 0
    reference_breach_alerts: int = 0
    worker_transitions: int = 0
    alert_mismatches: list[str] = field(default_factory=list)
    exits: dict[str, list[str]] = field(default_factory=dict)
    peak_rss_mib: dict[str, float] = field(default_factory=dict)  # sampled every 0.2 s
    hwm_mib: dict[str, float] = field(default_factory=dict)  # the kernel's VmHWM at the end
    waits_failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rss_bound_mib: float = 0.0

    def failures(self) -> list[str]:
        out = [f"{name} exited {len(e)} time(s); first: {e[0]}" for name, e in self.exits.items() if e]
        out += [f"gave up waiting: {w}" for w in self.waits_failed]
        if self.missing_readings or self.unexpected_readings or self.stored_readings != self.want_readings:
            out.append(f"readings: {self.stored_readings:,} stored of {self.want_readings:,}; "
                       f"{self.missing_readings:,} missing, {self.unexpected_readings:,} unexpected")
        if self.missing_dead_letters or self.unexpected_dead_letters or self.dead_letters_twice:
            out.append(f"dead letters: {self.dead_letters:,} of {self.want_dead_letters:,}; "
                       f"{self.missing_dead_letters:,} missing, {self.unexpected_dead_letters:,} unexpected, "
                       f"{self.dead_letters_twice:,} keys stored twice")
        for name in ("ingest", "alerts"):
            peak = max(self.peak_rss_mib.get(name, 0.0), self.hwm_mib.get(name, 0.0))
            if peak > self.rss_bound_mib:
                out.append(f"{name} peak RSS {peak:.0f} MiB over the bound of {self.rss_bound_mib:.0f} MiB")
        if self.alert_mismatches:
            out.append(f"alert transitions differ from the reference for {len(self.alert_mismatches)} "
                       f"(equipment, rule): " + "; ".join(self.alert_mismatches[:10]))
        return out

    def summary(self) -> str:
        rss = ", ".join(f"{n} {self.peak_rss_mib.get(n, 0):.0f} MiB (VmHWM {self.hwm_mib.get(n, 0):.0f})"
                        if n in self.hwm_mib else f"{n} {self.peak_rss_mib.get(n, 0):.0f} MiB"
                        for n in sorted(self.peak_rss_mib))
        return (f"messages published {self.published:,} ({self.mutated:,} mutated, {self.large:,} of them over "
                f"64 KiB; {self.repeats:,} published twice; {self.payload_bytes / 2**20:,.0f} MiB)\n"
                f"  process exits: " + ", ".join(f"{n} {len(e)}" for n, e in sorted(self.exits.items())) + "\n"
                f"  readings: {self.stored_readings:,} stored, {self.want_readings:,} expected "
                f"({self.missing_readings:,} missing, {self.unexpected_readings:,} unexpected)\n"
                f"  dead letters: {self.dead_letters:,} stored, {self.want_dead_letters:,} expected "
                f"({self.missing_dead_letters:,} missing, {self.unexpected_dead_letters:,} unexpected, "
                f"{self.dead_letters_twice:,} twice)\n"
                f"  alerts: {self.worker_transitions:,} transitions by the worker, {self.reference_transitions:,} by "
                f"the never-stopped reference; {len(self.alert_mismatches)} (equipment, rule) differ; "
                f"{self.breaches:,} breaches sent, {self.reference_breach_alerts:,} '{BREACH_RULE}' raised "
                f"in the reference\n"
                f"  peak RSS (bound {self.rss_bound_mib:.0f} MiB): {rss}\n"
                f"  {self.seconds:,.0f} s")


# -- the valid stream ---------------------------------------------------------------------------------------
class Stream:
    """The fleet's gateways, one message each a tick of event time (1 s), made chunk by chunk, seeded."""

    def __init__(self, registry: DemoRegistry, cfg: SystemConfig, t0_ms: int) -> None:
        self.rng = random.Random(cfg.seed)
        self.cfg = cfg
        self.t0 = t0_ms
        league = {g["id"]: g["league_code"] for g in registry.gateways}
        self.gateways: list[tuple[str, str, list[Equipment]]] = []
        by_gateway: dict[str, list[Equipment]] = {}
        for e in registry.equipment:
            steam = e["category"] == "1000" and "rated_pressure" in e["rated"]
            if e["category"] == "1000" and not steam:
                continue  # hot-water boilers: metrics of their own; the stream keeps to the three kinds chaos uses
            topic = build_topic(league[e["gateway_id"]], e["gateway_id"], Kind.TELEMETRY)
            by_gateway.setdefault(e["gateway_id"], []).append(
                Equipment(e["code"], e["category"], topic, {k: float(v) for k, v in e["rated"].items()}, steam))
        for gw in sorted(by_gateway):
            self.gateways.append((gw, league[gw], by_gateway[gw]))
        steam = [e.code for _, _, eqs in self.gateways for e in eqs if e.steam]
        self.ticks = -(-cfg.messages // len(self.gateways))
        # Each steam boiler breaches for BREACH_TICKS every `period` ticks, the boilers in turn.
        self.period = max(4 * BREACH_TICKS, min(600, self.ticks // 2))
        self.offset = {code: BREACH_TICKS + (k * self.period) // max(1, len(steam)) for k, code in enumerate(steam)}
        self.breaches = 0
        self.recent: deque[RawMessage] = deque(maxlen=2_000)
        self.tick = 0
        self.made = 0
        self.closed_ts = 0

    def _breach(self, code: str, tick: int) -> bool:
        start = self.offset.get(code)
        return start is not None and tick >= start and (tick - start) % self.period < BREACH_TICKS \
            and tick < self.ticks - 2 * BREACH_TICKS  # the last breach clears before the stream ends

    def _valid(self, gw: str, league: str, eqs: list[Equipment], ts: int, *, plain: bool) -> RawMessage:
        roll = 1.0 if plain else self.rng.random()
        if roll < 0.01:  # an event of one of its equipment, of its category
            eq = self.rng.choice(eqs)
            kinds = [e.type for e in EVENT_TYPES if str(e.category) == eq.category]
            doc = {"equipment": eq.code, "ts": ts, "type": self.rng.choice(kinds), "active": self.rng.random() < 0.5,
                   "details": {"note": "fuzz"}}
            return RawMessage(build_topic(league, gw, Kind.EVENT), orjson.dumps(doc))
        if roll < 0.015:  # a status: online or offline with its time, or a last will (no time)
            state = self.rng.choice([GatewayState.ONLINE, GatewayState.OFFLINE])
            will = state is GatewayState.OFFLINE and self.rng.random() < 0.5
            return RawMessage(build_topic(league, gw, Kind.STATUS),
                              encode_status(state) if will else encode_status(state, ts))
        entries = []
        for eq in eqs:
            breach = self._breach(eq.code, self.tick)
            if breach and (self.tick - self.offset[eq.code]) % self.period == 0:
                self.breaches += 1
            entries.append({"equipment": eq.code, "values": values(eq, self.tick, breach)})
        return RawMessage(build_topic(league, gw, Kind.TELEMETRY), orjson.dumps({"ts": ts, "readings": entries}))

    def chunk(self, n: int) -> tuple[list[RawMessage], int, int]:
        """The next messages up to a multiple of ``n`` made, with how many are mutated and how many repeats.

        The last message of a check's segment (and of the stream) is plain telemetry half a second after
        its tick, the newest event time of all: once the alert worker's checkpoint has reached that time,
        it has evaluated everything before (`closed_ts`)."""
        out: list[RawMessage] = []
        mutated = repeats = 0
        end = min(self.cfg.messages, (self.made // n + 1) * n)
        while self.made < end:
            gw, league, eqs = self.gateways[self.made % len(self.gateways)]
            self.tick = self.made // len(self.gateways)
            last = self.made == self.cfg.messages - 1 or (self.made + 1) % self.cfg.verify_every == 0
            ts = self.t0 + self.tick * 1000 + (500 if last else 0)
            message = self._valid(gw, league, eqs, ts, plain=last)
            if last:
                self.closed_ts = ts
            if not last and self.rng.random() < self.cfg.bad_share:
                message = mutate(self.rng, message, heavy=self.cfg.heavy)
                mutated += 1
            out.append(message)
            self.made += 1
            if not last and self.recent and self.rng.random() < self.cfg.repeat_share:
                out.append(self.rng.choice(self.recent))
                repeats += 1
            self.recent.append(message)
        return out, mutated, repeats


# -- the reference ------------------------------------------------------------------------------------------
class Reference:
    """The pure engine over the stream message by message, never stopped; its effects written into ``url``."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url)
        self.engine = Engine()
        with self.conn.transaction():
            self.engine.add(load_equipment(self.conn, []))
        self.evaluated = 0

    def feed(self, messages: list[RawMessage]) -> None:
        now = int(time.time() * 1000)
        for topic, payload in messages:
            batch = decode_batch([Delivery(topic, payload, 0, 1, 0, now / 1000)], now)
            effects, evaluated = self.engine.evaluate_decoded(batch)
            self.evaluated += evaluated
            if effects:
                with self.conn.transaction():
                    write_effects(self.conn, effects, self.engine.equipment)

    def close(self) -> None:
        self.conn.close()


# -- the run ------------------------------------------------------------------------------------------------
def _metric(port: str, name: str) -> float | None:
    """A metric of a process's own /metrics, summed over its labels (None when the process does not answer)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((name + " ", name + "{")))


def _vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class SystemRun:
    """One run (a context manager: what it started is stopped and removed on exit)."""

    def __init__(self, cfg: SystemConfig, log: Callable[[str], None] = lambda _s: None) -> None:
        self.cfg, self.say = cfg, log
        self.counts = Counts(rss_bound_mib=cfg.rss_bound_mib)
        self.stack = contextlib.ExitStack()
        self.logs = Path(tempfile.mkdtemp(prefix="sw-fuzz-system-"))
        self.children: dict[str, Child] = {}
        self._stop = threading.Event()

    def __enter__(self) -> SystemRun:
        self.postgres = self.stack.enter_context(PrivatePostgres())
        self.broker = self.stack.enter_context(PrivateBroker(shipped=True))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for child in self.children.values():
            child.stop()
        self.stack.close()

    def _database(self, name: str, registry: DemoRegistry) -> str:
        url = self.postgres.create_database(name)
        migrate(url, storage="plain")
        with psycopg.connect(url) as c:
            load_divisions(c)
            insert_registry(c, registry)
        return url

    def _start_children(self) -> None:
        self.ports = {"ingest": str(free_port()), "alerts": str(free_port())}
        env = {**os.environ, "SAFEWATCH_DB__URL": self.db_url, "SAFEWATCH_MQTT__URL": self.broker.url,
               "SAFEWATCH_MQTT__SESSION_EXPIRY_S": "3600", "SAFEWATCH_LOG_JSON": "true",
               "SAFEWATCH_INGEST__WORKER_ID": "fuzz-ingest", "SAFEWATCH_INGEST__SHARE_GROUP": "fuzz",
               "SAFEWATCH_ALERTS__WORKER_ID": "fuzz-alerts", "SAFEWATCH_ALERTS__HOUSEKEEPING_S": "3600",
               "SAFEWATCH_ALERTS__CHECKPOINT_S": str(self.cfg.checkpoint_s),
               "SAFEWATCH_INGEST__METRICS_PORT": self.ports["ingest"],
               "SAFEWATCH_ALERTS__METRICS_PORT": self.ports["alerts"]}
        for name in ("ingest", "alerts"):
            self.children[name] = Child(name, env, self.logs, '"subscribed"')
            if not self.children[name].start(120):
                raise RuntimeError(f"{name} did not start:\n{self.children[name].tail(30)}")

    def _supervise(self) -> None:
        """Counts exits (and starts the process again so the run goes on); samples each process's RSS."""
        peak = self.counts.peak_rss_mib
        tick = threading.Event()
        while not self._stop.is_set():
            pids: dict[str, int] = {}
            for name, child in self.children.items():
                if child.exited_unexpectedly() and len(child.unexpected) <= 3:
                    self.say(f"{name} EXITED: {child.unexpected[-1][:500]}")
                    child.start(120)
                if child.proc is not None:
                    pids[name] = child.proc.pid
            if self.broker.proc is not None:
                pids["mosquitto"] = self.broker.proc.pid
            for name, pid in pids.items():
                with contextlib.suppress(psutil.NoSuchProcess):
                    peak[name] = max(peak.get(name, 0.0), psutil.Process(pid).memory_info().rss / 2**20)
            tick.wait(0.2)

    def _wait(self, what: str, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        tick = threading.Event()
        while not done():
            if time.monotonic() > deadline:
                self.counts.waits_failed.append(what)
                self.say(f"gave up waiting: {what}")
                return False
            tick.wait(0.5)
        return True

    def _ingest_received(self) -> float:
        return _metric(self.ports["ingest"], "safewatch_ingest_messages_received_total") or 0.0

    def _watermark(self) -> int:
        with psycopg.connect(self.db_url) as c:
            row = c.execute(SELECT_SHARD, (shard_key([]),)).fetchone()
        return 0 if row is None else unpack_shard(bytes(row[0])).watermark_ms or 0

    def run(self) -> Counts:
        cfg, c = self.cfg, self.counts
        began = time.monotonic()
        registry = demo_registry(parse_divisions(shipped_divisions_text()), cfg.equipment, seed=cfg.seed,
                                 gateway_prefix="fz")
        later = dt.date.today() + dt.timedelta(days=300)
        for e in registry.equipment:  # no inspection falls due: only the stream raises alerts
            e["next_inspection_on"] = later
        self.db_url = self._database("fuzz", registry)
        ref_url = self._database("reference", registry)
        fleet = Fleet(registry.equipment, registry.gateways)
        # Event time: one second a tick, ending two minutes before the wall clock (the decoders refuse the future).
        stream = Stream(registry, cfg, 0)
        stream.t0 = int(time.time() * 1000) - stream.ticks * 1000 - 120_000
        reference = Reference(ref_url)
        self._start_children()
        threading.Thread(target=self._supervise, daemon=True).start()
        publisher = RawPublisher("127.0.0.1", self.broker.port, "fuzz-gateways", window=2000)
        want_readings: list[np.ndarray] = []
        want_keys: set[bytes] = set()
        evaluated_at: deque[tuple[int, int]] = deque()  # (published, readings the reference had evaluated)
        behind = 0
        try:
            while stream.made < cfg.messages:
                messages, mutated, repeats = stream.chunk(cfg.chunk)
                readings, _events, keys = expected(messages, fleet, int(time.time() * 1000))
                want_readings.append(np.fromiter(((e * 64 + m) * 2**41 + ts for e, m, ts in readings), np.int64,
                                                 len(readings)))
                want_keys |= keys
                reference.feed(messages)
                while evaluated_at and evaluated_at[0][0] < c.published - cfg.backlog:
                    behind = evaluated_at.popleft()[1]
                self._wait("the ingest to catch up with the publisher",
                           lambda: self._ingest_received() >= c.published - cfg.backlog, cfg.wait_s)
                if c.published > cfg.backlog:  # the alert worker too (0.95: its count need not match exactly)
                    floor = 0.95 * behind

                    def caught_up(floor: float = floor) -> bool:
                        return self._alerts_evaluated() >= floor

                    self._wait("the alert worker to catch up with the publisher", caught_up, cfg.wait_s)
                for i in range(0, len(messages), 100):
                    publisher.publish_many([(m.topic.encode(), m.payload) for m in messages[i:i + 100]])
                c.published += len(messages)
                evaluated_at.append((c.published, reference.evaluated))
                c.mutated += mutated
                c.repeats += repeats
                c.large += sum(1 for m in messages if len(m.payload) > 65_536)
                c.payload_bytes += sum(len(m.payload) for m in messages)
                if stream.made % 20_000 < cfg.chunk:
                    self.say(f"{stream.made:,} messages made, {c.published:,} published, "
                             f"{time.monotonic() - began:.0f} s; peak RSS "
                             + ", ".join(f"{n} {v:.0f} MiB" for n, v in sorted(c.peak_rss_mib.items())))
                last = stream.made >= cfg.messages
                if last or stream.made // cfg.verify_every > c.verified // cfg.verify_every:
                    if not publisher.wait_acked(cfg.wait_s):
                        c.waits_failed.append("the broker to acknowledge every message")
                    self._drained(stream.closed_ts)
                    self._collect(np.unique(np.concatenate(want_readings)), want_keys, ref_url)
                    c.breaches, c.verified, c.seconds = stream.breaches, stream.made, time.monotonic() - began
                    self.say(f"checked through {c.verified:,} messages: {'FAIL' if c.failures() else 'PASS'}\n"
                             + c.summary())
                    if c.waits_failed:
                        break
        finally:
            publisher.close()
            reference.close()
        for name, child in self.children.items():
            if child.proc is not None and child.proc.poll() is None:
                c.hwm_mib[name] = _vm_hwm_mib(child.proc.pid)
        self._stop.set()
        for name, child in self.children.items():
            code = child.stop()
            if code not in (0, None):
                child.unexpected.append(f"exit code {code} on SIGTERM: {child.tail()}")
            c.exits[name] = child.unexpected
        c.seconds = time.monotonic() - began
        return c

    def _drained(self, newest_ts: int) -> None:
        """Until the ingest has committed all it received and the alert worker's checkpoint reached ``newest_ts``."""
        self._wait("every message received and committed by the ingest",
                   lambda: self._ingest_done(self.counts.published), self.cfg.wait_s)
        self._wait("the alert worker's checkpoint to reach the stream's newest time",
                   lambda: self._watermark() >= newest_ts, self.cfg.wait_s)

    def _alerts_evaluated(self) -> float:
        return _metric(self.ports["alerts"], "safewatch_alerts_readings_evaluated_total") or 0.0

    def _ingest_done(self, published: int) -> bool:
        port = self.ports["ingest"]
        return (self._ingest_received() >= published
                and _metric(port, "safewatch_ingest_unacked_messages") == 0
                and _metric(port, "safewatch_ingest_queue_depth") == 0)

    def _collect(self, wanted: np.ndarray, want_keys: set[bytes], ref_url: str) -> None:
        c = self.counts
        with psycopg.connect(self.db_url) as conn:
            with conn.cursor().copy(READING_KEYS) as copy:
                text = b"".join(bytes(block) for block in copy)
            letters = {bytes(k): n for k, n in conn.execute(DEAD_LETTERS).fetchall() if k is not None}
        stored = np.array(text.split(), dtype=np.int64) if text else np.zeros(0, np.int64)
        distinct = np.unique(stored)
        c.want_readings, c.stored_readings = len(wanted), len(stored)
        c.missing_readings = len(np.setdiff1d(wanted, distinct, assume_unique=True))
        c.unexpected_readings = len(np.setdiff1d(distinct, wanted, assume_unique=True)) + len(stored) - len(distinct)
        c.want_dead_letters, c.dead_letters = len(want_keys), sum(letters.values())
        c.missing_dead_letters = len(want_keys - letters.keys())
        c.unexpected_dead_letters = len(letters.keys() - want_keys)
        c.dead_letters_twice = sum(1 for n in letters.values() if n > 1)
        want: Transitions = transitions(ref_url)
        got: Transitions = transitions(self.db_url)
        c.reference_transitions = sum(map(len, want.values()))
        c.worker_transitions = sum(map(len, got.values()))
        with psycopg.connect(ref_url) as conn:
            c.reference_breach_alerts = conn.execute(COUNT_ALERTS, (BREACH_RULE,)).fetchone()[0]  # type: ignore[index]
        c.alert_mismatches = mismatches(got, want)


@contextlib.contextmanager
def system_run(cfg: SystemConfig, log: Callable[[str], None] = lambda _s: None) -> Iterator[SystemRun]:
    with SystemRun(cfg, log) as run:
        yield run
