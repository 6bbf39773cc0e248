"""Notification benchmarks: publish → webhook delivered latency under load, and a receiver outage.

    python -m bench.notify latency [--rate 20] [--seconds 30] [--equipment 2000] [--group-interval 0]
    python -m bench.notify outage  [--outage-s 600] [--alerts 300]
    python -m bench.notify kill    [--trials 20] [--rows 12] [--restart]

``latency``: a PRIVATE Mosquitto on a free port and a FRESH database (on the PostgreSQL at
SAFEWATCH_BENCH_DB_URL, default the local server; its other databases are left alone) with a demo
registry; the ingest worker, the alert worker and the notifier run as their own processes
(``python -m safewatch.cli …``) exactly as deployed. Trapped-passenger events (critical: banner,
league and region at once) are published at ``--rate`` per second on distinct equipment for
``--seconds``; an on-duty contact with a webhook in every banner receives them on an HTTP server in
this process. Latency = webhook received − event time stamped at publish (one host, one clock).
Also printed: the two halves from the database (event → alert committed; committed → delivered).

``outage``: the same processes minus MQTT (alerts are written by the alert engine's own store code),
the receiver's port closed for ``--outage-s`` while ``--alerts`` alerts open, then reopened with
production retry settings (back-off capped at 60 s): counts what arrives, how often, and how long
the backlog takes to drain.

``kill``: ``--trials`` times, a notifier process killed with SIGKILL while four of its posts are held by
the receiver, another notifier beside it (bench/notify/kill.py describes one trial): prints the delay
from the kill to the takeover post of each row the killed notifier was posting, the normal claim-and-post
latency at the same moment, and the posts repeated (recorded deliveries: must be 0). With ``--restart``
the second notifier starts only after the kill (a supervisor's restart: its start-up is in the delay).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson
import psycopg

from bench.ingest.instances import PrivateBroker, free_port
from safewatch.contract import Event, Kind, build_topic, encode_event
from safewatch.db import one_row, with_database
from safewatch.registry.divisions import load_divisions, parse_divisions, shipped_divisions_text
from safewatch.registry.seed import demo_registry, insert_registry
from safewatch.schema.migrate import migrate

BASE_URL = os.environ.get("SAFEWATCH_BENCH_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REPO = Path(__file__).resolve().parents[2]
CREATED: list[str] = []  # databases this run made, dropped however it ends
ADD_CONTACTS = """
WITH added AS (
    INSERT INTO contacts (division_code, name, kind) SELECT code, 'bench duty ' || code, 'duty_officer'
    FROM divisions WHERE level = 'banner' RETURNING id)
INSERT INTO contact_channels (contact_id, channel, address) SELECT id, 'webhook', %s FROM added
"""
HALVES = """
SELECT extract(epoch FROM a.committed_at - a.opened_at) AS to_commit,
       extract(epoch FROM min(o.delivered_at) - a.committed_at) AS to_delivered
FROM alerts a JOIN notification_alerts na ON na.alert_id = a.id JOIN outbox o ON o.id = na.outbox_id
WHERE o.channel = 'webhook' AND a.rule_key = 'event.passenger_trapped' GROUP BY a.id
"""
TIMER_LATENESS = """
SELECT extract(epoch FROM t.fired_at - t.due_at) FROM escalation_timers t JOIN alerts a ON a.id = t.alert_id
WHERE t.fired_at IS NOT NULL AND a.rule_key = 'event.passenger_trapped'
"""
OUTBOX_SUMMARY = """
SELECT o.channel, count(*), count(o.delivered_at), sum(o.attempts) FROM outbox o GROUP BY o.channel ORDER BY 1
"""


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mosq = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout.splitlines()[:1]
    with psycopg.connect(BASE_URL) as conn:
        pg = one_row(conn.execute("SHOW server_version"))[0]
    return (f"machine: {platform.platform()}; {os.cpu_count()} CPUs ({cpu}); Python {platform.python_version()}; "
            f"PostgreSQL {pg}; {mosq[0] if mosq else 'mosquitto ?'}; paho-mqtt {version('paho-mqtt')}; "
            f"psycopg {version('psycopg')}; httpx {version('httpx')}; "
            f"load average {os.getloadavg()[0]:.2f} at start (the CPUs are shared)")


class Receiver:
    """The webhook receiver: records when each alert (by fingerprint) arrived, and every idempotency key."""

    def __init__(self, only: str) -> None:
        self.only = only
        self.arrivals: dict[int, float] = {}
        self.starts: dict[int, float] = {}
        self.keys: Counter[str] = Counter()
        self.requests = 0
        self.lock = threading.Lock()
        # The port stays reserved (bound, not listening: connections are refused) while the receiver is
        # down, so nothing else can take it during a ten-minute outage.
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._server: ThreadingHTTPServer | None = None

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.time()
                body = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                measured = [a for a in body["alerts"] if a["labels"]["alertname"] == receiver.only]
                with receiver.lock:
                    if measured:  # not e.g. the alert worker's own overdue-inspection alerts of the registry
                        receiver.requests += 1
                        receiver.keys[self.headers.get("Idempotency-Key", "")] += 1
                    for a in measured:
                        alert_id = int(a["fingerprint"], 16)
                        receiver.arrivals.setdefault(alert_id, now)
                        receiver.starts[alert_id] = _epoch(a["startsAt"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = self._sock
        server.server_activate()
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self._sock = socket.socket()
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind(("127.0.0.1", self.port))


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def fresh_database(equipment: int) -> tuple[str, Any]:
    name = f"safewatch_bench_notify_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(BASE_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(BASE_URL, name)
    CREATED.append(url)
    migrate(url)
    registry = demo_registry(parse_divisions(shipped_divisions_text()), equipment, seed=11, gateway_prefix="bn")
    with psycopg.connect(url) as conn:
        load_divisions(conn)
        insert_registry(conn, registry)
    return url, registry


def drop_database(url: str) -> None:
    with psycopg.connect(BASE_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


class Process:
    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.log = open(Path("/tmp") / f"bench-notify-{name}-{os.getpid()}.log", "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "safewatch.cli", name], env=env, cwd=REPO,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def await_line(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while needle.encode() not in Path(self.log.name).read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not log {needle!r}; see {self.log.name}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _env(db_url: str, mqtt_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "SAFEWATCH_DB__URL": db_url, "SAFEWATCH_MQTT__URL": mqtt_url, "SAFEWATCH_LOG_JSON": "true",
            "SAFEWATCH_LOG_LEVEL": "INFO", "SAFEWATCH_INGEST__METRICS_PORT": str(free_port()),
            "SAFEWATCH_ALERTS__METRICS_PORT": str(free_port()), "SAFEWATCH_NOTIFIER__METRICS_PORT": str(free_port()),
            "SAFEWATCH_INGEST__WORKER_ID": f"bench-ingest-{os.getpid()}",
            "SAFEWATCH_ALERTS__WORKER_ID": f"bench-alerts-{os.getpid()}",
            "SAFEWATCH_NOTIFIER__WORKER_ID": f"bench-notifier-{os.getpid()}", **extra}


BACKLOG = """
SELECT (SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND expired_at IS NULL)
     + (SELECT count(*) FROM escalation_timers WHERE fired_at IS NULL AND cancelled_at IS NULL
        AND due_at <= clock_timestamp())
"""


def settle(url: str) -> None:
    """Let the alerts the registry raises on its own at start (overdue inspections) be delivered first."""
    quiet_since = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with psycopg.connect(url) as conn:
            busy = one_row(conn.execute(BACKLOG))[0]
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 3:
            return
        time.sleep(0.5)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(args: argparse.Namespace) -> None:
    from safewatch.mqtt import connect_publisher
    from safewatch.settings import MqttSettings

    print(machine())
    url, registry = fresh_database(args.equipment)
    receiver = Receiver("event.passenger_trapped")
    receiver.up()
    with psycopg.connect(url) as conn:
        conn.execute(ADD_CONTACTS, (f"http://127.0.0.1:{receiver.port}/hook",))
    processes: list[Process] = []
    with PrivateBroker(shipped=False) as broker:
        try:
            env = _env(url, broker.url, SAFEWATCH_NOTIFIER__GROUP_INTERVAL_S=str(args.group_interval))
            processes = [Process(name, env) for name in ("ingest", "alerts", "notifier")]
            processes[0].await_line('"subscribed"')
            processes[1].await_line('"subscribed"')
            processes[2].await_line("notifier started")
            settle(url)
            elevators = [e for e in registry.equipment if e["category"] == "3000"]
            league = {g["id"]: g["league_code"] for g in registry.gateways}
            total = min(len(elevators), int(args.rate * args.seconds))
            pub = connect_publisher(MqttSettings(url=broker.url), client_id=f"bench-pub-{os.getpid()}")
            print(f"publishing {total} trapped-passenger events at {args.rate}/s over {len(registry.gateways)} "
                  f"gateways; grouping interval {args.group_interval} s")
            start = time.monotonic()
            infos = []
            for i, e in enumerate(elevators[:total]):
                due = start + i / args.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing the load generator, not synchronisation
                payload = encode_event(Event(e["code"], "passenger_trapped", int(time.time() * 1000)))
                infos.append(pub.publish(build_topic(league[e["gateway_id"]], e["gateway_id"], Kind.EVENT), payload,
                                         qos=1))
            for info in infos:
                info.wait_for_publish(30)
            publish_s = time.monotonic() - start
            deadline = time.monotonic() + 120
            while len(receiver.arrivals) < total and time.monotonic() < deadline:
                time.sleep(0.2)
            pub.disconnect()
            pub.loop_stop()
        finally:
            for p in processes:
                p.stop()
    lat = [receiver.arrivals[a] - receiver.starts[a] for a in receiver.arrivals]
    with psycopg.connect(url) as conn:
        halves = conn.execute(HALVES).fetchall()
        late = [float(r[0]) for r in conn.execute(TIMER_LATENESS)]
        outbox = conn.execute(OUTBOX_SUMMARY).fetchall()
    receiver.down()
    print(f"published {total} in {publish_s:.1f} s ({total / publish_s:.1f}/s); webhook received {len(lat)} alerts "
          f"in {receiver.requests} requests; duplicates {sum(c - 1 for c in receiver.keys.values())}")
    if lat:
        print(f"publish → webhook delivered: p50 {pct(lat, 0.5) * 1000:.0f} ms, p99 {pct(lat, 0.99) * 1000:.0f} ms, "
              f"max {max(lat) * 1000:.0f} ms, mean {statistics.fmean(lat) * 1000:.0f} ms")
    if halves:
        commit = [float(h[0]) for h in halves]
        deliver = [float(h[1]) for h in halves if h[1] is not None]
        print(f"  event → alert committed: p50 {pct(commit, 0.5) * 1000:.0f} ms, "
              f"p99 {pct(commit, 0.99) * 1000:.0f} ms; "
              f"committed → webhook delivered (DB clock): p50 {pct(deliver, 0.5) * 1000:.0f} ms, "
              f"p99 {pct(deliver, 0.99) * 1000:.0f} ms")
    if late:
        print(f"  escalation timers fired after their due time: p50 {pct(late, 0.5) * 1000:.0f} ms, "
              f"p99 {pct(late, 0.99) * 1000:.0f} ms, max {max(late) * 1000:.0f} ms "
              f"(limit 1000 ms: p99 at {pct(late, 0.99):.2f} of it)")
    print("  outbox rows (channel, rows, delivered, attempts): "
          + "; ".join(f"{c} {n} {d} {a}" for c, n, d, a in outbox))


def outage(args: argparse.Namespace) -> None:
    from alerts.engine.step import RaiseAlert
    from alerts.store import EquipmentInfo, apply_effects
    from safewatch.contract import Severity

    print(machine())
    url, _ = fresh_database(max(args.alerts, 200))
    receiver = Receiver("event.bench")
    with psycopg.connect(url) as conn:
        conn.execute(ADD_CONTACTS, (f"http://127.0.0.1:{receiver.port}/hook",))
        equipment = conn.execute("SELECT e.id, e.code, e.category, e.banner_code, d.league_code, e.gateway_id "
                                 "FROM equipment e JOIN divisions d ON d.code = e.banner_code ORDER BY e.id "
                                 "LIMIT %s", (args.alerts,)).fetchall()
    # Production retry settings; grouping off so every alert is its own notification to count.
    broker = PrivateBroker(shipped=False).start()
    notifier = Process("notifier", _env(url, broker.url, SAFEWATCH_NOTIFIER__GROUP_INTERVAL_S="0"))
    try:
        notifier.await_line("notifier started")
        print(f"receiver down for {args.outage_s:.0f} s; opening {len(equipment)} alerts during the outage")
        down_at = time.monotonic()
        with psycopg.connect(url) as conn:
            for i, (eq_id, code, category, banner, league, gw) in enumerate(equipment):
                target = down_at + i * (args.outage_s * 0.8) / len(equipment)
                if target > time.monotonic():
                    time.sleep(target - time.monotonic())  # spreading the alerts over the outage
                info = EquipmentInfo(eq_id, code, category, {}, banner, league, "in_use", gw)
                with conn.transaction():
                    apply_effects(conn, [RaiseAlert(eq_id, "event.bench", Severity.MINOR, None, None, None,
                                                    int(time.time() * 1000), "bench outage")], {eq_id: info})
        remaining = args.outage_s - (time.monotonic() - down_at)
        if remaining > 0:
            time.sleep(remaining)  # the outage itself
        receiver.up()
        up_at = time.monotonic()
        deadline = up_at + 300
        while len(receiver.arrivals) < len(equipment) and time.monotonic() < deadline:
            time.sleep(0.2)
        drained_s = time.monotonic() - up_at
    finally:
        notifier.stop()
        broker.close()
    with psycopg.connect(url) as conn:
        attempts = conn.execute("SELECT outcome, count(*) FROM outbox_attempts a JOIN outbox o ON o.id = a.outbox_id "
                                "WHERE o.channel = 'webhook' GROUP BY 1 ORDER BY 1").fetchall()
    receiver.down()
    dupes = sum(c - 1 for c in receiver.keys.values())
    print(f"after {args.outage_s:.0f} s down: received {len(receiver.arrivals)} of {len(equipment)} alerts in "
          f"{receiver.requests} requests, duplicates {dupes}; backlog drained {drained_s:.1f} s after the receiver "
          f"returned (retry back-off capped at 60 s); attempts logged: "
          + ", ".join(f"{o} {n}" for o, n in attempts))


def kill(args: argparse.Namespace) -> None:
    from bench.notify.kill import kill_trial, probe_alert

    print(machine())
    url, _ = fresh_database(20)
    alert_id = probe_alert(url)
    takeover: list[float] = []
    normal: list[float] = []
    ready: list[float] = []
    in_flight_repeats = recorded_repeats = undelivered = 0
    started = time.monotonic()
    for i in range(args.trials):
        trial = kill_trial(url, alert_id, rows=args.rows, restart=args.restart)
        takeover += trial.takeover_s
        normal += trial.normal_s
        ready.append(trial.b_ready_s)
        recorded_repeats += sum(trial.posts[k] - 1 for k in trial.keys if k not in trial.posted_by_a)
        in_flight_repeats += sum(trial.posts[k] - 1 for k in trial.posted_by_a)
        undelivered += len(set(trial.keys) - trial.delivered)
        print(f"trial {i + 1}: takeover {max(trial.takeover_s):.2f} s (normal {max(trial.normal_s):.2f} s)",
              flush=True)
    mode = f"second notifier started after the kill (ready p50 {pct(ready, 0.5):.2f} s, max {max(ready):.2f} s)" \
        if args.restart else "second notifier running beside"
    print(f"{args.trials} kills ({args.rows} rows, {len(takeover)} posts in flight at the kills; {mode}), "
          f"{time.monotonic() - started:.0f} s: kill → takeover post p50 {pct(takeover, 0.5):.2f} s, "
          f"max {max(takeover):.2f} s; normal claim-and-post latency p50 {pct(normal, 0.5):.2f} s, "
          f"max {max(normal):.2f} s; in-flight posts repeated {in_flight_repeats}, recorded deliveries "
          f"repeated {recorded_repeats}, undelivered {undelivered}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.notify")
    sub = parser.add_subparsers(dest="mode", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--rate", type=float, default=20.0)
    lat.add_argument("--seconds", type=float, default=30.0)
    lat.add_argument("--equipment", type=int, default=2000)
    lat.add_argument("--group-interval", type=float, default=0.0)
    out = sub.add_parser("outage")
    out.add_argument("--outage-s", type=float, default=600.0)
    out.add_argument("--alerts", type=int, default=300)
    killing = sub.add_parser("kill")
    killing.add_argument("--trials", type=int, default=20)
    killing.add_argument("--rows", type=int, default=12)
    killing.add_argument("--restart", action="store_true", help="start the second notifier only after the kill")
    args = parser.parse_args()
    try:
        {"latency": latency, "outage": outage, "kill": kill}[args.mode](args)
    finally:
        for url in CREATED:
            drop_database(url)


if __name__ == "__main__":
    main()
