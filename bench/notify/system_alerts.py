"""System alerts told to people: from the housekeeping's commit to the region contact's webhook, and no repeats.

A fresh database (on SAFEWATCH_BENCH_DB_URL, default the local server), the real notifier in this process,
a region contact with a webhook on a local HTTP receiver. ``--rounds`` system alerts are opened and
cleared with the ingest's own SQL, one after the other; the notifier is restarted halfway. Prints the
latency of each kind (commit → the receiver has the POST) and how many POSTs arrived against how many
are due (two per round: one opening, one clearing).

    python -m bench.notify.system_alerts --rounds 40
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import psycopg
from prometheus_client import CollectorRegistry

from alerts.notifier_worker import run as run_notifier
from bench.machine import brief
from bench.notify.__main__ import BASE_URL, drop_database
from ingest.timescale_jobs import CLEAR_SYSTEM_ALERTS, OPEN_SYSTEM_ALERT
from safewatch.db import with_database
from safewatch.registry.divisions import load_divisions
from safewatch.schema.migrate import migrate
from safewatch.settings import DbSettings, NotifierSettings, Settings

INSERT_CONTACT = """
INSERT INTO contacts (division_code, name, kind) VALUES ('150000', 'region duty', 'duty_officer') RETURNING id
"""
INSERT_CHANNEL = "INSERT INTO contact_channels (contact_id, channel, address) VALUES (%s, 'webhook', %s)"


class Receiver:
    """A webhook receiver noting (alertname, status) → arrival times."""

    def __init__(self) -> None:
        self.got: dict[tuple[str, str], list[float]] = {}
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with receiver.cond:
                    for a in body["alerts"]:
                        receiver.got.setdefault((a["labels"]["alertname"], body["status"]), []).append(time.time())
                    receiver.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/system"

    def wait(self, what: tuple[str, str], timeout: float = 30) -> float:
        with self.cond:
            assert self.cond.wait_for(lambda: what in self.got, timeout), f"{what} not received in {timeout} s"
            return self.got[what][0]


def start(settings: Settings) -> tuple[threading.Event, threading.Thread]:
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=run_notifier, args=(settings,), daemon=True,
                              kwargs={"stop": stop, "registry": CollectorRegistry(), "ready": ready})
    thread.start()
    assert ready.wait(30), "the notifier did not start"
    return stop, thread


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    name = f"safewatch_bench_sysalerts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(BASE_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(BASE_URL, name)
    receiver = Receiver()
    try:
        migrate(url)
        with psycopg.connect(url) as conn:
            load_divisions(conn)
            cid = conn.execute(INSERT_CONTACT).fetchone()
            assert cid is not None
            conn.execute(INSERT_CHANNEL, (cid[0], receiver.url))
        settings = Settings(db=DbSettings(url=url), notifier=NotifierSettings(
            worker_id=f"bench-sys-{name[-8:]}", metrics_port=None, group_interval_s=0))
        running = start(settings)
        lat: dict[str, list[float]] = {"firing": [], "resolved": []}
        with psycopg.connect(url, autocommit=True) as conn:
            for i in range(args.rounds):
                if i == args.rounds // 2:  # a restart halfway: nothing told before it is told again
                    running[0].set()
                    running[1].join(30)
                    running = start(settings)
                key = f"bench_{i}"
                alertname = f"system.timescale_jobs.{key}"
                t0 = time.time()
                conn.execute(OPEN_SYSTEM_ALERT, ("timescale_jobs", key, "bench: job failing", "{}"))
                lat["firing"].append(receiver.wait((alertname, "firing")) - t0)
                t0 = time.time()
                conn.execute(CLEAR_SYSTEM_ALERTS, ("timescale_jobs", []))
                lat["resolved"].append(receiver.wait((alertname, "resolved")) - t0)
        running[0].set()
        running[1].join(30)
        posts = sum(len(v) for v in receiver.got.values())
        print(brief())
        print(f"rounds {args.rounds}; webhook POSTs {posts} (due {2 * args.rounds}); notifier restarted once")
        for kind, values in lat.items():
            ms = [v * 1000 for v in values]
            print(f"{kind:8s} commit → webhook: median {statistics.median(ms):.1f} ms, p95 {pct(ms, 0.95):.1f} ms, "
                  f"max {max(ms):.1f} ms")
    finally:
        receiver.server.shutdown()
        drop_database(url)


if __name__ == "__main__":
    main()
