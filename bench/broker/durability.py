"""What a broker kill -9 loses: QoS 1 messages the broker acknowledged, then never delivered.

One trial: a persistent-session subscriber subscribes and goes offline (a worker whose database is down,
so the broker queues for it); a QoS 1 publisher fills a backlog, then publishes at a steady rate; the
broker is killed with SIGKILL while it publishes; the broker restarts from what it persisted; the
subscriber comes back and takes everything, up to a marker published after the restart (the session's
queue is delivered in order, so once the marker is in nothing more is coming). Every message carries its
sequence number; a message is *acknowledged* when its PUBACK reached the publisher (Mosquitto acks one
connection's QoS 1 messages in order, so the first ``acked`` sequence numbers are exactly those).

Used by ``python -m bench.broker`` (every setting, long) and tests/system/test_broker_durability.py
(the shipped setting, short).
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import psutil

from bench.ingest.instances import PrivateBroker
from bench.ingest.publisher import RawPublisher
from safewatch.mqtt import Subscriber, connect_publisher
from safewatch.settings import MqttSettings

TOPIC = b"se/v1/150100/gw-durability/telemetry"
SUBSCRIBER_ID = "durability-sub"
MARKER = b"marker"
PAD = b"x" * 280  # about a shape-(a) message: one equipment, 8 readings


def message(seq: int) -> bytes:
    return b"%d " % seq + PAD


@dataclass
class Trial:
    """What one trial measured."""

    options: dict[str, str]
    backlog: int
    rate: float
    steady_s: float
    sent: int = 0
    acked: int = 0
    steady_acked: int = 0  # acknowledged during the steady phase (its throughput)
    broker_cpu_s: float = 0.0  # the broker's CPU over the steady phase
    snapshots: int = 0  # "Saving in-memory database" lines logged during the steady phase
    restart_s: float = 0.0  # restart to listening (reading the snapshot)
    received: set[int] = field(default_factory=set)
    lost: list[int] = field(default_factory=list)  # acknowledged and never delivered
    lost_window_s: float = 0.0  # from the first lost message's PUBACK to the kill
    longest_stall_s: float = 0.0  # the steady phase's longest time without a PUBACK (a snapshot being written)
    backlog_s: float = 0.0  # time the broker took to acknowledge the backlog

    @property
    def steady_rate(self) -> float:
        return self.steady_acked / self.steady_s


class _Publishing(threading.Thread):
    """Publishes ``backlog`` messages as fast as the broker takes them, then ``rate`` per second until
    the connection dies; records (monotonic time, messages acknowledged so far) as it goes."""

    def __init__(self, port: int, *, backlog: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.pub = RawPublisher("127.0.0.1", port, "durability-pub", window=20_000)
        self.backlog, self.rate = backlog, rate
        self.acks: list[tuple[float, int]] = []
        self.backlog_done = threading.Event()
        self.started = time.monotonic()
        self.steady_started = 0.0
        self.steady_acked0 = 0

    def run(self) -> None:
        pub, seq = self.pub, 0
        with contextlib.suppress(OSError):  # the broker was killed: the connection ends
            while seq < self.backlog:
                n = min(1000, self.backlog - seq)
                pub.publish_many([(TOPIC, message(s)) for s in range(seq, seq + n)])
                seq += n
                self.acks.append((time.monotonic(), pub.acked))
            pub.wait_acked(120)
            self.acks.append((time.monotonic(), pub.acked))
            self.steady_started, self.steady_acked0 = time.monotonic(), pub.acked
            self.backlog_done.set()
            chunk = max(1, int(self.rate / 100))  # 10 ms of messages a write
            while True:
                due = int((time.monotonic() - self.steady_started) * self.rate) + self.steady_acked0
                if seq >= due:
                    time.sleep(chunk / self.rate)
                    continue
                n = min(chunk, due - seq)
                pub.publish_many([(TOPIC, message(s)) for s in range(seq, seq + n)])
                seq += n
                self.acks.append((time.monotonic(), pub.acked))
        # Count the PUBACKs that reached us before the connection ended (they are in the socket's buffer).
        with contextlib.suppress(OSError):
            while True:
                pub._take_acks(0.5)
        self.acks.append((time.monotonic(), pub.acked))
        self.backlog_done.set()
        pub.sock.close()


def park_subscriber(broker: PrivateBroker) -> None:
    """A persistent session subscribed at QoS 1, then offline: the broker queues everything for it."""
    settings = MqttSettings(url=broker.url, session_expiry_s=3600)
    with Subscriber(settings, client_id=SUBSCRIBER_ID, topic_filters=[TOPIC.decode()], max_inflight=1000) as sub:
        if not sub.wait_subscribed(30):
            raise TimeoutError("the subscriber's subscription was not acknowledged within 30 s")


def drain_subscriber(broker: PrivateBroker, *, timeout: float = 300.0) -> set[int]:
    """The sequence numbers the persistent session receives after a restart, up to a marker sent now.

    The subscriber is mosquitto_sub (C): a Python subscriber would take most of a trial to drain a backlog.
    """
    cmd = ["stdbuf", "-oL", "mosquitto_sub", "-d", "-p", str(broker.port), "-q", "1", "-V", "5", "-c",
           "-x", "3600", "-i", SUBSCRIBER_ID, "-t", TOPIC.decode()]
    sub = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    assert sub.stdout is not None
    timer = threading.Timer(timeout, sub.kill)  # a bound on a hung drain, not a synchronisation
    timer.start()
    got: set[int] = set()
    try:
        for line in sub.stdout:  # -d reports the SUBACK: the session is back, so the marker is queued after all
            if b"SUBACK" in line:
                marker = connect_publisher(MqttSettings(url=broker.url), client_id="durability-marker")
                marker.publish(TOPIC.decode(), MARKER, qos=1).wait_for_publish(30)
                marker.disconnect()
                marker.loop_stop()
            elif line.startswith(MARKER):
                return got
            elif line[:1].isdigit():
                got.add(int(line.split(b" ", 1)[0]))
        raise TimeoutError(f"the marker did not arrive within {timeout} s ({len(got):,} messages so far)")
    finally:
        timer.cancel()
        sub.kill()
        sub.wait(10)


def _saves(broker: PrivateBroker) -> int:
    return broker.log.read_text(errors="replace").count("Saving in-memory database")


class BacklogTooSlow(RuntimeError):
    """The broker did not acknowledge the backlog in time (snapshots of a growing queue took all its time)."""


def run_trial(options: Mapping[str, str], *, backlog: int, rate: float, steady_s: float,
              kill_at: Callable[[], float] | None = None, backlog_timeout: float = 120.0) -> Trial:
    """One trial on a private broker from the shipped configuration with ``options`` set.

    The broker is killed ``kill_at()`` seconds into the steady phase (by default at its end).
    """
    trial = Trial(dict(options), backlog, rate, steady_s)
    with PrivateBroker(shipped=True, options=options) as broker:
        park_subscriber(broker)
        publishing = _Publishing(broker.port, backlog=backlog, rate=rate)
        publishing.start()
        if not publishing.backlog_done.wait(backlog_timeout):
            broker.kill()
            publishing.join(60)
            raise BacklogTooSlow(f"{publishing.pub.acked:,} of the {backlog:,} backlog messages acknowledged "
                                 f"in {backlog_timeout:.0f} s with {dict(options)}")
        trial.backlog_s = publishing.steady_started - publishing.started
        assert broker.proc is not None
        proc = psutil.Process(broker.proc.pid)
        cpu0, saves0 = sum(proc.cpu_times()[:2]), _saves(broker)
        stop = threading.Event()
        stop.wait(kill_at() if kill_at else steady_s)  # the moment of the kill, not a synchronisation
        trial.broker_cpu_s = sum(proc.cpu_times()[:2]) - cpu0
        trial.snapshots = _saves(broker) - saves0
        trial.steady_s = time.monotonic() - publishing.steady_started
        killed_at = time.monotonic()
        broker.kill()
        publishing.join(60)
        trial.sent, trial.acked = publishing.pub.sent, publishing.pub.acked
        trial.steady_acked = trial.acked - publishing.steady_acked0
        started = time.monotonic()
        broker.start()
        trial.restart_s = time.monotonic() - started
        trial.received = drain_subscriber(broker)
    trial.lost = [s for s in range(trial.acked) if s not in trial.received]
    steady = [(t, n) for t, n in publishing.acks if t >= publishing.steady_started]
    advances = [t for (t, n), (_, before) in zip(steady[1:], steady, strict=False) if n > before]
    trial.longest_stall_s = max((b - a for a, b in itertools.pairwise(advances)), default=0.0)
    if trial.lost:
        first = trial.lost[0]
        acked_at = next(t for t, n in publishing.acks if n > first)
        trial.lost_window_s = killed_at - acked_at
    return trial


def snapshot_seconds(queued: list[int]) -> list[tuple[int, float, int]]:
    """How long Mosquitto takes to write its snapshot with each of ``queued`` messages queued for an offline
    subscriber: (queued, seconds, file bytes). One broker (no autosave), the queue grown step by step; each
    save is forced with SIGUSR1 and timed until the new file replaces the old (Mosquitto writes
    ``mosquitto.db.new`` and renames it when complete)."""
    out = []
    with PrivateBroker(shipped=True, options={"autosave_interval": "0"}) as broker:
        park_subscriber(broker)
        pub = RawPublisher("127.0.0.1", broker.port, "snapshot-pub", window=20_000)
        seq = 0
        db = broker.data / "mosquitto.db"
        tick = threading.Event()
        for target in sorted(queued):
            while seq < target:
                n = min(1000, target - seq)
                pub.publish_many([(TOPIC, message(s)) for s in range(seq, seq + n)])
                seq += n
            if not pub.wait_acked(300):
                raise TimeoutError(f"the broker did not acknowledge {target:,} messages within 300 s")
            before = db.stat().st_ino if db.exists() else None
            assert broker.proc is not None
            started = time.monotonic()
            broker.proc.send_signal(signal.SIGUSR1)
            while not (db.exists() and db.stat().st_ino != before):
                if time.monotonic() - started > 600:
                    raise TimeoutError("no snapshot written within 600 s of SIGUSR1")
                tick.wait(0.01)
            out.append((target, time.monotonic() - started, db.stat().st_size))
        pub.close()
    return out
