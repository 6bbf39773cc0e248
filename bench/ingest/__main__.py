"""Ingest benchmark: ``python -m bench.ingest [--duration 30] [--shapes a,b] [--burst] [--layout]``.

Everything private except the PostgreSQL server: a Mosquitto with the shipped configuration on a
free port, a fresh database on the shared PostgreSQL (created here, dropped at the end). Drives
real `safewatch ingest` and `safewatch alerts` processes with the raw-socket publisher
(bench/ingest/publisher.py) and prints, per shape: messages/s and readings/s stored, CPU per
process, commit latency p50/p99, and in the same run the ceilings of the parts (the broker alone
to two C subscribers at QoS 1; binary COPY alone) with our ratio to them.

Shapes: (a) one equipment per message, 8 readings; (b) 50 equipment per message (400 readings).
``--burst``: the sustained rate, then 10x for 30 s, then back; memory of the ingest sampled
against its stated bound. ``--layout``: narrow vs wide binary COPY (docs/decisions/wide-readings.md).

The alert engine starts as a long-running one would: every equipment's anomaly detectors restored
past their learning period (a 20-second run would otherwise never leave it, and learning costs
almost nothing); ``--cold-engine`` starts it with nothing learned. ``--alert-workers N`` runs N alert
workers, each owning a share of the leagues; ``--ingest-workers N`` shares the stream among N ingest
workers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from bench.alerts.engine import trained_states
from bench.ingest.instances import PrivateBroker, bench_server, cpu_of, free_port, server_cpu
from bench.ingest.publisher import RawPublisher, entry
from ingest.buffers import buffers_advice, buffers_and_fleet
from ingest.copy_format import pack, pack_nullable, timestamptz_from_ms
from safewatch.db import one_row, with_database
from safewatch.registry.divisions import load_divisions
from safewatch.schema.layout import READING_TABLES
from safewatch.schema.migrate import migrate

# A bench fleet straight in SQL (20,000 rows in well under a second): boilers and elevators, the
# categories with at least 8 metrics, spread over the banners, 50 per gateway.
INSERT_GATEWAYS = """
INSERT INTO gateways (id, league_code, name)
SELECT 'bench-' || lpad(g::text, 5, '0'), b.league_code, 'bench gateway ' || g
FROM generate_series(0, %(gateways)s - 1) AS g
JOIN LATERAL (SELECT league_code FROM divisions WHERE level = 'banner' ORDER BY code
              OFFSET g %% (SELECT count(*) FROM divisions WHERE level = 'banner') LIMIT 1) b ON true
"""
INSERT_EQUIPMENT = """
INSERT INTO equipment (code, category, variety, banner_code, rated, gateway_id)
SELECT CASE WHEN i %% 4 = 0 THEN '1100' ELSE '3110' END || '15' || lpad(i::text, 12, '0'),
       CASE WHEN i %% 4 = 0 THEN '1000' ELSE '3000' END, CASE WHEN i %% 4 = 0 THEN '1100' ELSE '3110' END,
       b.code,
       CASE WHEN i %% 4 = 0
            THEN '{"rated_pressure": 1.25, "safety_valve_low": 1.3, "safety_valve_high": 1.325, "rated_evaporation": 4}'
            ELSE '{"rated_speed": 1.75, "rated_load": 1000, "floors": 20}' END::jsonb,
       'bench-' || lpad((i / 50)::text, 5, '0')
FROM generate_series(0, %(equipment)s - 1) AS i
JOIN gateways g ON g.id = 'bench-' || lpad((i / 50)::text, 5, '0')
JOIN LATERAL (SELECT code FROM divisions WHERE level = 'banner' AND league_code = g.league_code
              ORDER BY code LIMIT 1) b ON true
"""
SEED_ENGINE_STATES = """
INSERT INTO alert_engine_state (equipment_id, state)
SELECT id, CASE WHEN category = '1000' THEN %(boiler)s ELSE %(elevator)s END FROM equipment
"""
EQUIPMENT_BY_LEAGUE = """
SELECT d.league_code, count(*) FROM equipment e JOIN divisions d ON d.code = e.banner_code
GROUP BY 1 ORDER BY 2 DESC, 1
"""
SELECT_PLAN = """
SELECT g.id, g.league_code, array_agg(e.code ORDER BY e.code), array_agg(e.category ORDER BY e.code)
FROM gateways g JOIN equipment e ON e.gateway_id = g.id WHERE g.id LIKE 'bench-%' GROUP BY 1, 2 ORDER BY 1
"""
COUNT_READINGS = "SELECT count(*) FROM readings"
WRITTEN = "safewatch_ingest_readings_written_total"
CREATE_CEILING_NARROW = """
CREATE TABLE ceiling_narrow (time timestamptz NOT NULL, equipment_id integer NOT NULL, metric_id smallint NOT NULL,
                             value double precision NOT NULL, PRIMARY KEY (equipment_id, metric_id, time))
"""
CREATE_CEILING_WIDE = "CREATE TABLE ceiling_wide (LIKE elevator_readings INCLUDING ALL)"
COPY_CEILING_NARROW = "COPY ceiling_narrow (time, equipment_id, metric_id, value) FROM STDIN (FORMAT BINARY)"
COPY_CEILING_WIDE = "COPY ceiling_wide FROM STDIN (FORMAT BINARY)"


def machine(server_url: str) -> str:
    mosq = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout.splitlines()[0]
    with psycopg.connect(server_url) as c:
        pg = one_row(c.execute("SHOW server_version"))[0]
        ts = c.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
        buffers = one_row(c.execute("SHOW shared_buffers"))[0]
    return (f"machine: {platform.platform()}; {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB; Python {platform.python_version()}; {mosq}; "
            f"PostgreSQL {pg} (shared_buffers {buffers}); TimescaleDB {ts[0] if ts else 'absent'}")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


# -- ceilings ---------------------------------------------------------------------------------------------
def broker_ceiling(broker: PrivateBroker, messages: int, subscribers: int = 2) -> tuple[float, float]:
    """QoS 1 shape-(a) messages through the broker to ``subscribers`` C clients (mosquitto_sub).

    Returns (msg/s published and delivered to every subscriber, publisher CPU s per 1k messages).
    """
    topic = b"se/v1/150100/bench-ceiling/telemetry"
    subs = []
    for n in range(subscribers):
        # stdbuf: mosquitto_sub block-buffers a pipe, and the SUBACK line is the readiness signal.
        sub = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "-d", "-p", str(broker.port), "-q", "1", "-V", "5",
                                "-t", topic.decode(), "-C", str(messages), "-i", f"ceiling-{n}"],
                               stdout=subprocess.PIPE, text=True)
        assert sub.stdout is not None
        for line in sub.stdout:  # -d reports the SUBACK: subscribed
            if "SUBACK" in line:
                break
        threading.Thread(target=sub.stdout.read, daemon=True).start()  # keep its pipe drained
        subs.append(sub)
    pub = RawPublisher("127.0.0.1", broker.port, "ceiling-pub")
    cpu0 = time.process_time()
    started = time.perf_counter()
    for start in range(0, messages, 1000):
        pub.publish_many([(topic, b'{"readings":[' + entry(b"311015000000000001", "3000", 1_764_000_000_000 + i, i)
                           + b"]}") for i in range(start, min(messages, start + 1000))])
    pub.wait_acked(120)
    for s in subs:
        s.wait(300)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    pub.close()
    return messages / elapsed, cpu / messages * 1000


def copy_ceiling(url: str, readings: int) -> tuple[float, float]:
    """PostgreSQL's binary COPY alone, one writer, the streams packed beforehand so Python is not measured:
    narrow rows (time, equipment, metric, value) keyed like the narrow table was, and wide rows into a
    table like elevator_readings holding 8 of its 13 metrics, as the benches' messages do.

    Returns (narrow readings/s, wide readings/s).
    """
    n = readings // 8
    ids = np.arange(n, dtype=np.int32) % 10_000
    ts = timestamptz_from_ms(1_764_000_000_000 + np.arange(n) // 10_000)
    values = np.full((n, 13), np.nan)
    values[:, :8] = (np.arange(n * 8) % 97).reshape(n, 8)
    narrow = pack([("timestamptz", np.repeat(ts, 8)), ("int4", np.repeat(ids, 8)),
                   ("int2", np.tile(np.arange(40, 48, dtype=np.int16), n)), ("float8", values[:, :8].reshape(-1))])
    wide = pack_nullable([("timestamptz", ts), ("int4", ids)], values)
    rates = []
    with psycopg.connect(url) as c:
        c.execute(CREATE_CEILING_NARROW)
        c.execute(CREATE_CEILING_WIDE)
        c.commit()
        for statement, stream in ((COPY_CEILING_NARROW, narrow), (COPY_CEILING_WIDE, wide)):
            started = time.perf_counter()
            with c.cursor() as cur, cur.copy(statement) as cp:
                cp.write(stream)
            c.commit()
            rates.append(n * 8 / (time.perf_counter() - started))
        c.execute("DROP TABLE ceiling_narrow, ceiling_wide")
        c.commit()
    return rates[0], rates[1]


def writer_ceiling(url: str, readings: int, batch_readings: int = 8000) -> tuple[float, float]:
    """Our own write path alone (ingest.writer.write_batch), one writer, batches as the ingest makes them,
    rows built beforehand: (readings/s by the fast path — COPY straight into the wide table —, readings/s
    by the slow path taken when a batch holds a redelivery — COPY to staging, INSERT … ON CONFLICT)."""
    from ingest.batching import METRIC_KEYS, Batch, Readings
    from ingest.pivot import pivot
    from ingest.writer import _merge_rows, prepare, write_batch

    with psycopg.connect(url) as c:
        ids = [r[0] for r in c.execute("SELECT id FROM equipment ORDER BY id LIMIT 10000")]
        plain = prepare(c)
        rates = []
        for offset, fast in ((3_600_000, True), (1_800_000, False)):
            start_ms = int(time.time() * 1000) - offset
            batches = []
            for k in range(0, readings, batch_readings):  # entries of 8 readings, as the decoder gives them
                entries = Readings()
                for i in range(k, min(readings, k + batch_readings), 8):
                    entries.add(ids[(i // 8) % len(ids)], start_ms + i // (8 * len(ids)),
                                {METRIC_KEYS[40 + m]: float((i + m) % 97) for m in range(8)})
                batches.append(Batch(readings=entries))
            started = time.perf_counter()
            stored = 0
            for b in batches:
                if fast:
                    stored += write_batch(c, b, mark_rollups=plain)
                else:
                    with c.transaction(), c.cursor() as cur:
                        stored += sum(_merge_rows(cur, wide) for wide in pivot(b.readings))
            rates.append(stored / (time.perf_counter() - started))
        for table in READING_TABLES:
            c.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table.name)))
        c.commit()
    return rates[0], rates[1]


# -- the pipeline -----------------------------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    cpu0: float = 0.0
    log: Path | None = None
    metrics_port: int = 0

    def cpu(self) -> float:
        try:
            t = psutil.Process(self.popen.pid).cpu_times()
            return t.user + t.system
        except psutil.NoSuchProcess:
            return 0.0


@dataclass
class Pipeline:
    broker: PrivateBroker
    db_url: str
    tmp: Path
    procs: list[Proc] = field(default_factory=list)
    ingest_metrics_ports: list[int] = field(default_factory=list)
    start_s: dict[str, float] = field(default_factory=dict)  # process start to subscribed

    def start_workers(self, ingest_workers: int, alert_shards: list[list[str]], max_inflight: int) -> None:
        """Start the ingest workers and one alert worker per shard (its league codes; [] = every league)."""
        run_id = uuid.uuid4().hex[:6]
        base = {**os.environ, "SAFEWATCH_DB__URL": self.db_url, "SAFEWATCH_MQTT__URL": self.broker.url,
                "SAFEWATCH_LOG_JSON": "true", "SAFEWATCH_MQTT__SESSION_EXPIRY_S": "600",
                "SAFEWATCH_INGEST__SHARE_GROUP": f"bench-{run_id}",
                "SAFEWATCH_INGEST__MAX_INFLIGHT": str(max_inflight),
                # Several ingest workers share the stream (MQTT v5 shared subscription); one reads it plain.
                "SAFEWATCH_MQTT__SHARED_SUBSCRIPTIONS": "true" if ingest_workers > 1 else "false"}
        workers: list[tuple[str, list[str]]] = [(f"ingest-{n + 1}", []) for n in range(ingest_workers)]
        workers += [("alerts" if len(alert_shards) == 1 else f"alerts-{n + 1}", leagues)
                    for n, leagues in enumerate(alert_shards)]
        for name, leagues in workers:
            port = free_port()
            env = {**base, "SAFEWATCH_ALERTS__LEAGUES": json.dumps(leagues),
                   "SAFEWATCH_INGEST__WORKER_ID": f"bench-{run_id}-{name}",
                   "SAFEWATCH_ALERTS__WORKER_ID": f"bench-{run_id}-{name}",
                   "SAFEWATCH_INGEST__METRICS_PORT": str(port), "SAFEWATCH_ALERTS__METRICS_PORT": str(port)}
            log = self.tmp / f"{name}-{run_id}.log"
            with log.open("wb") as out:
                popen = subprocess.Popen([sys.executable, "-m", "safewatch.cli", name.split("-")[0]], env=env,
                                         stderr=out)
            self.procs.append(Proc(name, popen, log=log, metrics_port=port))
            if name.startswith("ingest"):
                self.ingest_metrics_ports.append(port)
            started = time.monotonic()
            _await_log(log, '"subscribed"', 600)  # the alert worker first loads every saved engine state
            self.start_s[name] = time.monotonic() - started

    def stop_workers(self) -> None:
        for p in self.procs:
            p.popen.terminate()
        for p in self.procs:
            try:
                p.popen.wait(60)
            except subprocess.TimeoutExpired:
                p.popen.kill()
        self.procs.clear()
        self.ingest_metrics_ports.clear()

    def scrape(self) -> dict[str, float]:
        """The ingest workers' metrics, summed."""
        total: dict[str, float] = {}
        for port in self.ingest_metrics_ports:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            for name, labels, value in re.findall(r"^(safewatch_ingest_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", text, re.M):
                key = name + (labels or "")
                total[key] = total.get(key, 0.0) + float(value)
        return total


def _await_log(path: Path, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while needle not in path.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} never logged {needle}:\n{path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


def quantile_from_buckets(before: dict[str, float], after: dict[str, float], metric: str, q: float) -> float:
    """A quantile of a Prometheus histogram over an interval (linear inside the bucket, as PromQL does)."""
    pattern = re.compile(rf'^{metric}_bucket\{{le="([^"]+)"\}}$')
    buckets = sorted((float(m[1]) if m[1] != "+Inf" else float("inf"), after[k] - before.get(k, 0.0))
                     for k in after if (m := pattern.match(k)))
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    rank, prev_le, prev_count = q * total, 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / max(count - prev_count, 1e-9)
        prev_le, prev_count = le, count
    return prev_le


def write_plan(conn: psycopg.Connection, path: Path, publishers: int) -> list[Path]:
    """Split the bench fleet's gateways over ``publishers`` plan files (disjoint equipment)."""
    groups = [{"topic": f"se/v1/{league}/{gw}/telemetry", "equipment": list(zip(codes, cats, strict=True))}
              for gw, league, codes, cats in conn.execute(SELECT_PLAN)]
    paths = []
    for n in range(publishers):
        p = path.with_name(f"{path.stem}-{n}.json")
        p.write_text(json.dumps({"groups": groups[n::publishers]}))
        paths.append(p)
    return paths


def count(url: str) -> int:
    with psycopg.connect(url) as c:
        return int(one_row(c.execute(COUNT_READINGS))[0])


def run_shape(pipe: Pipeline, plans: list[Path], *, label: str, per_message: int, rate: float, duration: float,
              alert_shards: list[list[str]], ingest_workers: int, max_inflight: int,
              burst: bool = False) -> dict[str, object]:
    alerts = bool(alert_shards)
    pipe.start_workers(ingest_workers, alert_shards, max_inflight)
    stored0 = count(pipe.db_url)
    for p in pipe.procs:
        p.cpu0 = p.cpu()
    assert pipe.broker.proc is not None, "the pipeline starts its broker first"
    broker_proc = psutil.Process(pipe.broker.proc.pid)
    broker_cpu0 = sum(broker_proc.cpu_times()[:2])
    with psycopg.connect(pipe.db_url) as c:
        backends = [r[0] for r in c.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                            "AND application_name = 'safewatch' AND pid <> pg_backend_pid()")]
        postmaster = psutil.Process(c.info.backend_pid).ppid()
    pg_cpu0, server_cpu0 = cpu_of(backends), server_cpu(postmaster)
    blocks0 = blocks(pipe.db_url)
    metrics0 = pipe.scrape()
    started = time.monotonic()
    pubs = []
    phases = [(rate, duration)] if not burst else [(rate, 20.0), (rate * 10, 30.0), (rate, 20.0)]
    peak_rss, peak_unacked_bytes, peak_unacked = 0, 0.0, 0.0
    stop_sampling = threading.Event()

    def sample() -> None:
        nonlocal peak_rss, peak_unacked_bytes, peak_unacked
        while not stop_sampling.wait(0.5):
            for p in pipe.procs:
                if p.name.startswith("ingest"):
                    try:
                        peak_rss = max(peak_rss, psutil.Process(p.popen.pid).memory_info().rss)
                    except psutil.NoSuchProcess:
                        pass
            m = pipe.scrape()
            peak_unacked_bytes = max(peak_unacked_bytes, m.get("safewatch_ingest_unacked_bytes", 0.0))
            peak_unacked = max(peak_unacked, m.get("safewatch_ingest_unacked_messages", 0.0))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sent = 0
    readings_sent = 0
    pub_cpu = 0.0
    for phase_rate, phase_s in phases:
        per_pub = phase_rate / len(plans)
        pubs = [subprocess.Popen([sys.executable, "-m", "bench.ingest.publisher", "--port", str(pipe.broker.port),
                                  "--plan", str(plan), "--rate", str(per_pub), "--duration", str(phase_s),
                                  "--per-message", str(per_message), "--client-id", f"pub-{label}-{n}-{time.time()}"],
                                 stdout=subprocess.PIPE) for n, plan in enumerate(plans)]
        for pub in pubs:
            out, _ = pub.communicate(timeout=phase_s + 300)
            result = json.loads(out)
            if not result["all_acked"]:
                raise RuntimeError(f"publisher not fully acknowledged: {result}")
            sent += result["sent"]
            readings_sent += result["readings"]
            pub_cpu += result["cpu_s"]
    published_s = time.monotonic() - started
    # Progress from the workers' own counter: counting the tables every 0.2 s would take a core of
    # PostgreSQL from the run it measures. The database is counted once, at the end, to check exactness.
    written0 = metrics0.get(WRITTEN, 0.0)
    while (written := pipe.scrape().get(WRITTEN, 0.0) - written0) < readings_sent:
        if time.monotonic() - started > published_s + 600:
            raise RuntimeError(f"ingest did not drain: {written:,.0f} of {readings_sent:,} written")
        time.sleep(0.2)
    drained_s = time.monotonic() - started
    stop_sampling.set()
    sampler.join()
    metrics1 = pipe.scrape()
    cpu = {p.name: p.cpu() - p.cpu0 for p in pipe.procs}
    cpu["mosquitto"] = sum(broker_proc.cpu_times()[:2]) - broker_cpu0
    cpu["postgres (our backends)"] = cpu_of(backends) - pg_cpu0
    # The server's own processes too: checkpoints, WAL writing, autovacuum and TimescaleDB's refresh jobs
    # compete for the same cores (and the bench's own few queries, counted here).
    cpu["postgres (the rest of the server)"] = server_cpu(postmaster) - server_cpu0 - cpu["postgres (our backends)"]
    hit1, read1 = blocks(pipe.db_url)
    hit, read = hit1 - blocks0[0], read1 - blocks0[1]
    cpu["publishers"] = pub_cpu
    alerts_at_drain = _alerts_evaluated(pipe) if alerts else None
    alerts_drained_s = None
    if alerts:  # the alert engine got every message too; how far behind was it?
        deadline = time.monotonic() + 300
        while _alerts_evaluated(pipe) < readings_sent and time.monotonic() < deadline:
            time.sleep(0.2)
        alerts_drained_s = time.monotonic() - started if _alerts_evaluated(pipe) >= readings_sent else None
        for p in pipe.procs:
            if p.name.startswith("alerts"):
                cpu[p.name] = p.cpu() - p.cpu0
    start_s = dict(pipe.start_s)
    pipe.stop_workers()
    stored = count(pipe.db_url) - stored0
    return {
        "label": label, "messages": sent, "readings": readings_sent, "stored": stored,
        "published_s": published_s, "drained_s": drained_s,
        "offered_msg_s": sum(r * s for r, s in phases) / sum(s for _, s in phases),
        "msg_s": sent / drained_s, "readings_s": stored / drained_s,
        "cpu": cpu, "p50": quantile_from_buckets(metrics0, metrics1, "safewatch_ingest_commit_duration_seconds", .5),
        "p99": quantile_from_buckets(metrics0, metrics1, "safewatch_ingest_commit_duration_seconds", .99),
        "batch_p50": quantile_from_buckets(metrics0, metrics1, "safewatch_ingest_batch_messages", .5),
        "peak_rss": peak_rss, "peak_unacked_bytes": peak_unacked_bytes, "peak_unacked": peak_unacked,
        "blocks_hit": hit, "blocks_read": read,
        "alerts_at_drain": alerts_at_drain, "alerts_drained_s": alerts_drained_s, "start_s": start_s,
    }


# Blocks our tables and indexes found in PostgreSQL's buffers, and those it had to read in (from the
# operating system's cache or the disk): a write working set larger than shared_buffers shows here.
BLOCKS_HIT_AND_READ = """
SELECT coalesce(sum(heap_blks_hit + idx_blks_hit), 0)::bigint, coalesce(sum(heap_blks_read + idx_blks_read), 0)::bigint
FROM pg_statio_user_tables
"""


def blocks(db_url: str) -> tuple[int, int]:
    with psycopg.connect(db_url) as c:
        hit, read = one_row(c.execute(BLOCKS_HIT_AND_READ))
    return int(hit), int(read)


def _alerts_evaluated(pipe: Pipeline) -> float:
    """Readings evaluated by all the alert workers."""
    total = 0.0
    for p in pipe.procs:
        if p.name.startswith("alerts"):
            text = httpx.get(f"http://127.0.0.1:{p.metrics_port}/metrics", timeout=10).text
            match = re.search(r"^safewatch_alerts_readings_evaluated_total ([0-9.e+]+)$", text, re.M)
            total += float(match[1]) if match else 0.0
    return total


def alert_shards(conn: psycopg.Connection, workers: int) -> list[list[str]]:
    """The leagues split into ``workers`` shards of about as many equipment each (largest first)."""
    if workers == 1:
        return [[]]
    shards: list[tuple[int, list[str]]] = [(0, []) for _ in range(workers)]
    for league, n in conn.execute(EQUIPMENT_BY_LEAGUE):
        size, leagues = min(shards, key=lambda s: s[0])
        shards[shards.index((size, leagues))] = (size + n, [*leagues, league])
    return [leagues for _, leagues in shards]




def report(r: dict[str, Any], broker_msg_s: float, copy_readings_s: float, writer_rows_s: float,
           per_message: int) -> None:
    readings_per_msg = 8 * per_message
    print(f"\n== shape {r['label']} ==")
    print(f"  offered {r['offered_msg_s']:,.0f} msg/s; published {r['messages']:,} messages "
          f"({r['readings']:,} readings) in {r['published_s']:.1f} s; all stored after {r['drained_s']:.1f} s "
          f"(stored {r['stored']:,}: {'exact' if r['stored'] == r['readings'] else 'MISMATCH'})")
    print(f"  throughput end to end: {r['msg_s']:,.0f} messages/s = {r['readings_s']:,.0f} readings/s")
    print(f"  ceilings, same run: broker alone {broker_msg_s:,.0f} msg/s to 2 C subscribers -> ours "
          f"{r['msg_s'] / broker_msg_s:.0%}; COPY alone {copy_readings_s:,.0f} readings/s "
          f"(= {copy_readings_s / readings_per_msg:,.0f} msg/s of this shape) -> ours "
          f"{r['readings_s'] / copy_readings_s:.0%}; "
          f"our write path alone {writer_rows_s:,.0f} readings/s -> ours {r['readings_s'] / writer_rows_s:.0%}")
    print(f"  commit latency p50 {r['p50'] * 1000:.1f} ms, p99 {r['p99'] * 1000:.1f} ms "
          f"(from the histogram buckets); median batch {r['batch_p50']:.0f} messages")
    hit, read = int(r["blocks_hit"]), int(r["blocks_read"])
    print(f"  PostgreSQL blocks of our tables and indexes: {hit:,} found in shared_buffers, {read:,} read in "
          f"({read / max(1, hit + read):.1%}; {read / int(r['readings']) * 1000:.1f} a thousand readings)")
    cpu = r["cpu"]
    wall = float(r["drained_s"])
    print("  CPU (seconds, and cores busy on average over the run): " + "; ".join(
        f"{k} {v:.1f} s ({v / wall:.2f})" for k, v in cpu.items()))
    # What limits it when the cores are busy: the CPU each reading costs, all processes together.
    readings = int(r["readings"])
    per_reading = {k: v / readings * 1e6 for k, v in cpu.items()}
    total = sum(per_reading.values())
    cores = os.cpu_count() or 1
    print("  CPU per reading: " + "; ".join(f"{k} {v:.2f} µs" for k, v in per_reading.items())
          + f"; in all {total:.2f} µs, so {cores} cores fully busy take at most {cores / total * 1e6:,.0f} "
          f"readings/s ({sum(cpu.values()) / (cores * wall):.0%} of the cores busy in this run)")
    if r["alerts_at_drain"] is not None:
        drained = r["alerts_drained_s"]
        print(f"  alert engine: {r['alerts_at_drain']:,.0f} readings evaluated when the ingest had stored all; "
              + (f"all evaluated after {drained:.1f} s" if drained else "not all evaluated within 300 s more")
              + " (its CPU above includes that catch-up)")
        starts = [v for k, v in r["start_s"].items() if k.startswith("alerts")]
        print(f"  alert worker start (loading the equipment and their saved states) to subscribed: "
              f"{max(starts):.1f} s")
    print(f"  ingest peak RSS {int(r['peak_rss']) / 2**20:.0f} MiB; peak unacknowledged "
          f"{r['peak_unacked']:,.0f} messages / {r['peak_unacked_bytes'] / 2**20:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of sustained publishing per shape")
    parser.add_argument("--shapes", default="a,b")
    parser.add_argument("--rate-a", type=float, default=30_000, help="offered messages/s, shape a")
    parser.add_argument("--rate-b", type=float, default=2_500, help="offered messages/s, shape b (x400 readings)")
    parser.add_argument("--equipment", type=int, default=20_000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--ingest-workers", type=int, default=1)
    parser.add_argument("--max-inflight", type=int, default=5000)
    parser.add_argument("--no-alerts", action="store_true")
    parser.add_argument("--alert-workers", type=int, default=1,
                        help="alert workers, each owning a share of the leagues (their own subscriptions)")
    parser.add_argument("--cold-engine", action="store_true",
                        help="the alert engine starts with nothing learned (its detectors learn all run long, as "
                             "on a first start) instead of restoring detectors past their learning period")
    parser.add_argument("--burst", action="store_true", help="10x the rate for 30 s between two sustained phases")
    parser.add_argument("--ceiling-messages", type=int, default=200_000)
    parser.add_argument("--broker-option", action="append", default=[], metavar="NAME=VALUE",
                        help="a Mosquitto option set over the shipped deploy/mosquitto/mosquitto.conf, e.g. "
                             "autosave_interval=1 (repeatable; python -m bench.broker compares persistence settings)")
    parser.add_argument("--private-postgres", metavar="SETTINGS", default=None,
                        help="run against a private PostgreSQL cluster with these postgresql.conf lines, "
                             "comma-separated (e.g. 'shared_buffers=4GB,max_wal_size=16GB'), not the shared server")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # so the finally blocks clean up
    with bench_server(args.private_postgres) as server_url:
        run_bench(args, server_url)


def run_bench(args: argparse.Namespace, server_url: str) -> None:
    print(machine(server_url))
    print(f"before: {load()}")
    name = f"safewatch_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    tmp = Path(tempfile.mkdtemp(prefix="sw-bench-"))
    try:
        storage = migrate(url)
        with psycopg.connect(url) as c:
            load_divisions(c)
            c.execute(INSERT_GATEWAYS, {"gateways": (args.equipment + 49) // 50})
            c.execute(INSERT_EQUIPMENT, {"equipment": args.equipment})
            if not (args.cold_engine or args.no_alerts):
                trained = trained_states(stuck=True)  # trained as in every earlier run: figures stay comparable
                c.execute(SEED_ENGINE_STATES, {"boiler": Jsonb(trained["1000"]), "elevator": Jsonb(trained["3000"])})
            c.commit()
            plans = write_plan(c, tmp / "plan.json", args.publishers)
            shards = [] if args.no_alerts else alert_shards(c, args.alert_workers)
            advice = buffers_advice(*buffers_and_fleet(c))  # as the ingest logs at start: the figures depend on it
        print(f"database {name} ({storage} storage), {args.equipment:,} equipment on "
              f"{(args.equipment + 49) // 50} gateways, {args.publishers} publisher processes")
        if advice:
            print(f"note: {advice} (docs/decisions/shared-buffers.md; --private-postgres 'shared_buffers=…')")
        if not args.no_alerts:
            print("alert engine: " + ("cold, its detectors learning all run long" if args.cold_engine else
                                      "every equipment's anomaly detectors past their learning period (saved states "
                                      "restored at start, as after a restart of a long-running worker)")
                  + (f"; {len(shards)} alert workers, leagues {shards}" if len(shards) > 1 else ""))
        options = dict(o.split("=", 1) for o in args.broker_option)
        if options:
            print(f"broker: the shipped configuration with {options}")
        with PrivateBroker(shipped=True, options=options) as broker, contextlib.ExitStack() as stack:
            broker_msg_s, pub_cpu_per_k = broker_ceiling(broker, args.ceiling_messages)
            narrow_readings_s, copy_readings_s = copy_ceiling(url, 2_000_000)
            writer_rows_s, fallback_rows_s = writer_ceiling(url, 1_000_000)
            print(f"ceiling, broker alone: {broker_msg_s:,.0f} msg/s QoS 1 from one raw publisher to 2 mosquitto_sub "
                  f"(publisher {pub_cpu_per_k * 1000:.0f} µs CPU per message)")
            print(f"ceiling, COPY alone (binary, one writer, packed beforehand, 8 readings an equipment): wide rows "
                  f"(the layout in use) {copy_readings_s:,.0f} readings/s; narrow rows {narrow_readings_s:,.0f} "
                  f"readings/s (wide/narrow {copy_readings_s / narrow_readings_s:.1f}x)")
            print(f"ceiling, our write path alone (batches of 8,000, one writer, commit each): COPY into the table "
                  f"{writer_rows_s:,.0f} readings/s; the fallback for batches holding a redelivery (COPY to staging"
                  f" + INSERT ON CONFLICT) {fallback_rows_s:,.0f} readings/s")
            pipe = Pipeline(broker, url, tmp)
            stack.callback(pipe.stop_workers)
            shapes = {"a": (1, args.rate_a), "b": (50, args.rate_b)}
            for key in args.shapes.split(","):
                per_message, rate = shapes[key]
                label = f"({key}) {per_message} equipment x 8 readings per message" + (" BURST" if args.burst else "")
                result = run_shape(pipe, plans, label=label, per_message=per_message, rate=rate,
                                   duration=args.duration, alert_shards=shards,
                                   ingest_workers=args.ingest_workers, max_inflight=args.max_inflight,
                                   burst=args.burst)
                report(result, broker_msg_s, copy_readings_s, writer_rows_s, per_message)
                print(f"  {load()}")
        print(f"\nafter: {load()}")
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
