"""Fuzz of the ingest (issue 21): mutated messages mixed into a valid stream.

    python -m bench.fuzz decoder [--messages 1000000]   # the pure decoder and assembly, checked batch by batch
    python -m bench.fuzz ingest  [--messages 50000]     # through a private Mosquitto, the ingest and PostgreSQL
    python -m bench.fuzz flood   [--rounds 10]          # 12 MiB batches of worst-case messages: peak RSS
    python -m bench.fuzz system  [--messages 1000000]   # through private Mosquitto and PostgreSQL, the ingest
                                                        # and the alert worker, against the pure engine's run

Pass (system): see bench/fuzz/system.py.
Pass (ingest, flood): the ingest never exits; every valid reading and event stored once; every message
with something wrong dead-lettered once (its key), nothing else; peak RSS within the documented bound
(docs/mqtt-contract.md, "Memory").
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import psutil
import psycopg

from bench.fuzz.mutations import Fleet, check, expected, stream, valid_message
from bench.fuzz.system import SystemConfig, system_run
from bench.ingest.__main__ import load, machine
from bench.ingest.instances import SHARED_SERVER_URL, PrivateBroker, free_port
from bench.ingest.publisher import RawPublisher
from bench.machine import with_broker
from ingest.batching import RawMessage, assemble
from safewatch.contract import Limits
from safewatch.db import one_row, with_database
from safewatch.registry.divisions import load_divisions, parse_divisions, shipped_divisions_text
from safewatch.registry.seed import DemoRegistry, demo_registry, insert_registry
from safewatch.schema.migrate import migrate

BATCH = 500
COUNT_READINGS = """
SELECT count(*) FROM readings r JOIN equipment e ON e.id = r.equipment_id WHERE e.gateway_id LIKE %s
"""
COUNT_EVENTS = "SELECT count(*) FROM events WHERE gateway_id LIKE %s"
DEAD_LETTER_KEYS = "SELECT message_key FROM dead_letters WHERE message_key IS NOT NULL"


def _fleet(n: int, prefix: str) -> tuple[Fleet, DemoRegistry]:
    registry = demo_registry(parse_divisions(shipped_divisions_text()), n, seed=11, gateway_prefix=prefix)
    return Fleet(registry.equipment, registry.gateways), registry


def peak_rss_mib(pid: int | None = None) -> float:
    """The peak resident set (VmHWM) of ``pid``, or of this process."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def run_decoder(args: argparse.Namespace) -> None:
    fleet, _ = _fleet(400, "fz")
    rng = random.Random(args.seed)
    now = int(time.time() * 1000)
    limits = Limits(now)
    outcomes: Counter[str] = Counter()
    done = 0
    started = time.perf_counter()
    while done < args.messages:
        n = min(BATCH, args.messages - done)
        messages = stream(rng, fleet, now, n, bad_share=args.bad_share)
        batch = assemble(messages, fleet.registry, limits)
        check(messages, batch)  # AssertionError (or any exception) ends the run: a failure
        outcomes["dead letters"] += len(batch.dead_letters)
        outcomes["readings"] += len(batch.readings)
        outcomes["events"] += len(batch.events)
        outcomes["statuses"] += len(batch.statuses)
        for d in batch.dead_letters:
            outcomes[f"reason {d.reason}"] += 1
        done += n
        if done % 100_000 < BATCH:
            print(f"  {done:,} messages, {time.perf_counter() - started:.0f} s, peak RSS {peak_rss_mib():.0f} MiB",
                  flush=True)
    elapsed = time.perf_counter() - started
    print(f"decoder fuzz: {done:,} messages (about {args.bad_share:.0%} mutated, seed {args.seed}) in {elapsed:.0f} s "
          f"({done / elapsed:,.0f} msg/s, generation included); 0 exceptions; every batch checked; "
          f"peak RSS {peak_rss_mib():.0f} MiB")
    print("  " + "; ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())))


class Ingest:
    """A private database, a private Mosquitto and one ingest process (``safewatch ingest``)."""

    def __init__(self, n_equipment: int) -> None:
        self.name = f"safewatch_fuzz_{uuid.uuid4().hex[:8]}"
        self.prefix = f"fz{uuid.uuid4().hex[:4]}"
        with psycopg.connect(SHARED_SERVER_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
        self.url = with_database(SHARED_SERVER_URL, self.name)
        migrate(self.url)
        self.fleet, registry = _fleet(n_equipment, self.prefix)
        with psycopg.connect(self.url) as c:
            load_divisions(c)
            insert_registry(c, registry)
        self.broker = PrivateBroker(shipped=True).start()
        self.tmp = Path(tempfile.mkdtemp(prefix="sw-fuzz-"))
        env = {**os.environ, "SAFEWATCH_DB__URL": self.url, "SAFEWATCH_MQTT__URL": self.broker.url,
               "SAFEWATCH_LOG_JSON": "true", "SAFEWATCH_MQTT__SESSION_EXPIRY_S": "600",
               "SAFEWATCH_INGEST__WORKER_ID": f"fuzz-{self.prefix}", "SAFEWATCH_INGEST__METRICS_PORT": str(free_port()),
               "SAFEWATCH_MQTT__SHARED_SUBSCRIPTIONS": "false"}
        self.log = self.tmp / "ingest.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "safewatch.cli", "ingest"], env=env, stderr=out)
        deadline = time.monotonic() + 120
        while '"subscribed"' not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the ingest did not start; see {self.log}")
            time.sleep(0.2)  # a bench waiting for a process to start; not a test
        self.publisher = RawPublisher("127.0.0.1", self.broker.port, f"fuzz-pub-{self.prefix}", window=2000)

    def publish(self, messages: list[RawMessage]) -> None:
        for i in range(0, len(messages), 100):
            self.publisher.publish_many([(m.topic.encode(), m.payload) for m in messages[i:i + 100]])
        if not self.publisher.wait_acked(600):
            raise RuntimeError("the broker did not acknowledge every message")

    def counts(self) -> tuple[int, int, set[bytes]]:
        with psycopg.connect(self.url) as c:
            readings = one_row(c.execute(COUNT_READINGS, (f"{self.prefix}%",)))[0]
            events = one_row(c.execute(COUNT_EVENTS, (f"{self.prefix}%",)))[0]
            keys = {bytes(r[0]) for r in c.execute(DEAD_LETTER_KEYS).fetchall()}
        return readings, events, keys

    def wait_for(self, readings: int, events: int, keys: set[bytes], timeout: float) -> tuple[int, int, set[bytes]]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.counts()
            if (got[0] >= readings and got[1] >= events and got[2] >= keys) or time.monotonic() > deadline \
                    or self.proc.poll() is not None:
                return got
            time.sleep(1)  # polling the database for the end of a bench run

    def close(self) -> None:
        self.publisher.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        self.broker.close()
        with psycopg.connect(SHARED_SERVER_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def run_ingest(args: argparse.Namespace) -> None:
    ingest = Ingest(args.equipment)
    try:
        rng = random.Random(args.seed)
        now = int(time.time() * 1000)
        messages = stream(rng, ingest.fleet, now, args.messages, bad_share=args.bad_share)
        messages += messages[: len(messages) // 10]  # a tenth sent again: redeliveries store nothing new
        want_readings, want_events, want_keys = expected(messages, ingest.fleet, int(time.time() * 1000))
        started = time.perf_counter()
        ingest.publish(messages)
        readings, events, keys = ingest.wait_for(len(want_readings), len(want_events), want_keys, 600)
        elapsed = time.perf_counter() - started
        alive = ingest.proc.poll() is None
        ok = alive and readings == len(want_readings) and events == len(want_events) and keys == want_keys
        print(f"ingest fuzz: {len(messages):,} messages ({args.messages:,} + {len(messages) - args.messages:,} sent "
              f"again; about {args.bad_share:.0%} mutated, seed {args.seed}, "
              f"{sum(len(m.payload) for m in messages) / 2**20:,.0f} MiB) in {elapsed:.0f} s: "
              f"{'PASS' if ok else 'FAIL'}")
        print(f"  ingest {'alive (0 exits)' if alive else 'EXITED'}; readings stored {readings:,} of "
              f"{len(want_readings):,}; events {events:,} of {len(want_events):,}; dead letters {len(keys):,} "
              f"(expected {len(want_keys):,}, {len(keys - want_keys)} unexpected, {len(want_keys - keys)} missing); "
              f"ingest peak RSS {peak_rss_mib(ingest.proc.pid) if alive else 0:.0f} MiB")
    finally:
        ingest.close()


# Worst-case messages, each just under the payload limit: what costs the decoder most per byte.
def _worst(kind: str, ts: int, fleet: Fleet, gw: str, limit: int) -> bytes:
    code = fleet.by_gateway[gw][0][0].encode()
    junk = {"zeros": b"0", "objects": b"{}",
            "out_of_range": b'{"equipment":"%s","values":{"speed":1e9,"floor":-5}}' % code,
            "unknown_codes": b'{"equipment":"ZZ%010d","values":{"speed":1}}',
            "valid": b'{"equipment":"%s","values":{"speed":1.5,"floor":3,"door_locked":1}}' % code}[kind]
    n = (limit - 64) // (len(junk % 0 if kind == "unknown_codes" else junk) + 1)
    if kind == "unknown_codes":
        body = b",".join(junk % (ts % 10**6 * 10**4 + i) for i in range(n))
    else:
        body = b",".join([junk] * n)
    return b'{"ts":%d,"readings":[%s]}' % (ts, body)


def run_flood(args: argparse.Namespace) -> None:
    ingest = Ingest(400)
    try:
        rng = random.Random(args.seed)
        now = int(time.time() * 1000)
        warm = [valid_message(rng, ingest.fleet, now) for _ in range(20_000)]
        ingest.publish(warm)
        want = expected(warm, ingest.fleet, int(time.time() * 1000))
        ingest.wait_for(len(want[0]), len(want[1]), want[2], 300)
        before = rss_mib(ingest.proc.pid)
        print(f"ingest after 20,000 valid messages: RSS {before:.0f} MiB, peak {peak_rss_mib(ingest.proc.pid):.0f} MiB")
        limit = 256 * 1024 - 1024
        elevators = [gw for gw in ingest.fleet.gateways if ingest.fleet.by_gateway[gw][0][1] == "3000"]
        all_keys: set[bytes] = set()
        for kind in ("zeros", "objects", "out_of_range", "unknown_codes", "valid"):
            messages = []
            for r in range(args.rounds * 48):  # 48 messages of 255 KiB: a 12 MiB batch
                gw = elevators[r % len(elevators)]
                topic = f"se/v1/{ingest.fleet.league[gw]}/{gw}/telemetry"
                messages.append(RawMessage(topic, _worst(kind, now - r - 1000 * len(all_keys), ingest.fleet, gw,
                                                         limit)))
            keys = expected(messages, ingest.fleet, int(time.time() * 1000))[2]
            all_keys |= keys
            started = time.perf_counter()
            ingest.publish(messages)
            got = ingest.wait_for(0, 0, all_keys, 600)
            elapsed = time.perf_counter() - started
            alive = ingest.proc.poll() is None
            print(f"  {kind}: {len(messages)} messages of {len(messages[0].payload) / 1024:.0f} KiB "
                  f"({sum(len(m.payload) for m in messages) / 2**20:.0f} MiB) in {elapsed:.1f} s; dead letters "
                  f"{len(got[2] & keys)} of {len(keys)} expected; ingest {'alive' if alive else 'EXITED'}, "
                  f"RSS {rss_mib(ingest.proc.pid) if alive else 0:.0f} MiB, "
                  f"peak {peak_rss_mib(ingest.proc.pid) if alive else 0:.0f} MiB", flush=True)
            if not alive:
                break
        print(f"flood: peak RSS of the ingest {peak_rss_mib(ingest.proc.pid):.0f} MiB (was {before:.0f} MiB before "
              f"the flood); batch_max_bytes 12 MiB, max_inflight_bytes 64 MiB")
    finally:
        ingest.close()


def run_system(args: argparse.Namespace) -> None:
    cfg = SystemConfig(messages=args.messages or 1_000_000, bad_share=args.bad_share, seed=args.seed,
                       equipment=args.equipment or SystemConfig.equipment, rss_bound_mib=args.rss_bound_mib,
                       heavy=args.heavy, verify_every=args.verify_every)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # so the private services are removed
    print(with_broker())
    print(f"system fuzz: {cfg}", flush=True)
    with system_run(cfg, log=lambda s: print(f"  {s}", flush=True)) as run:
        counts = run.run()
    print(counts.summary())
    failures = counts.failures()
    for failure in failures:
        print(f"FAILED: {failure[:3000]}")
    print("PASS: every check" if not failures else f"FAIL: {len(failures)} check(s) failed")
    print(f"after: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sys.exit(1 if failures else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["decoder", "ingest", "flood", "system"])
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--bad-share", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--equipment", type=int, default=None, help="ingest, flood: 400; system: 300")
    parser.add_argument("--rounds", type=int, default=3, help="flood: 12 MiB batches of each worst case")
    parser.add_argument("--rss-bound-mib", type=float, default=SystemConfig.rss_bound_mib, help="system: per process")
    parser.add_argument("--heavy", type=float, default=SystemConfig.heavy,
                        help="system: how often mutations make a message large, against the decoder fuzz's")
    parser.add_argument("--verify-every", type=int, default=SystemConfig.verify_every,
                        help="system: messages between full checks (a multiple of 2,000)")
    args = parser.parse_args()
    args.equipment = args.equipment or (None if args.mode == "system" else 400)
    if args.mode == "system":
        run_system(args)
        return
    print(machine(SHARED_SERVER_URL))
    print(f"before: {load()}")
    if args.mode == "decoder":
        args.messages = args.messages or 1_000_000
        run_decoder(args)
    elif args.mode == "ingest":
        args.messages = args.messages or 50_000
        run_ingest(args)
    else:
        run_flood(args)
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
