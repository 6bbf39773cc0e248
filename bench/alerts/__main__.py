"""Alert engine benchmark: publish → alert committed under sustained load, and detection quality.

Run from the repository root::

    python -m bench.alerts [--equipment 2000] [--interval 1] [--seconds 60] [--injections-per-s 4]
                           [--quality-equipment 120] [--quality-hours 12] [--skip-latency] [--skip-quality]

**Latency** (needs Mosquitto and the PostgreSQL at SAFEWATCH_BENCH_DB_URL, default the local server):
a private Mosquitto on a free port (the shipped config) and a fresh database (dropped afterwards) with a
generated registry of ``--equipment`` equipment (about 20 per gateway). One alert worker runs as its
own process (``python -m safewatch.cli alerts``). This process publishes, every ``--interval`` seconds,
one telemetry message per gateway carrying every equipment's readings from the simulators' models
(QoS 1), spread over the interval as unsynchronised gateways would, and ``--injections-per-s`` times
a second a separate message putting one not-yet-used equipment past its high-high limit (boiler drum
pressure over the lower safety valve, receiver pressure over its safety valve, car speed over 1.2 ×
rated: rules without on-delay). Latency is the database's
``alerts.committed_at`` of that alert minus the wall time just before the publish (same machine, same
clock). The first 5 s are a warm-up and not measured.

**Quality** (pure, no services): `bench.alerts.quality` — the simulators' fleet with random faults
through the worker's own engine; recall, latency in event time and false alerts per equipment-day.

NAB scores of the anomaly detector come from ``python -m bench.nab.score``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import paho.mqtt
import psycopg

from bench.alerts.quality import run_quality
from bench.ingest.instances import MOSQUITTO, PrivateBroker, free_port
from safewatch.db import with_database
from safewatch.mqtt import connect_publisher
from safewatch.registry.divisions import load_divisions, parse_divisions, shipped_divisions_text
from safewatch.registry.seed import demo_registry, insert_registry
from safewatch.schema.migrate import migrate
from safewatch.settings import MqttSettings
from simulators.simulation import SimEquipment, Simulation

ADMIN_URL = os.environ.get("SAFEWATCH_BENCH_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
WARMUP_S = 5.0
SLICES = 20  # a tick's messages are published in this many slices spread over the interval
HIGH_HIGH = {"1000": ("drum_pressure", "safety_valve_low", 1.03, "boiler.drum_pressure.high_high"),
             "2000": ("vessel_pressure", "safety_valve_set", 1.03, "vessel.pressure.high_high"),
             "3000": ("speed", "rated_speed", 1.3, "elevator.speed.high_high")}
SELECT_INJECTED = """
SELECT e.code, extract(epoch FROM a.committed_at)::float8 FROM alerts a JOIN equipment e ON e.id = a.equipment_id
WHERE a.rule_key = ANY(%s)
"""


def machine() -> str:
    with psycopg.connect(ADMIN_URL) as c:
        pg = (c.execute("SHOW server_version").fetchone() or ("?",))[0]
        ts = c.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    mosq = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True).stdout.splitlines()[:1]
    return (f"{platform.platform()}; {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
            f"Python {platform.python_version()}; numpy {np.__version__}; paho-mqtt {paho.mqtt.__version__}; "
            f"PostgreSQL {pg}; TimescaleDB {ts[0] if ts else 'absent'}; {mosq[0] if mosq else 'mosquitto ?'}")


@dataclass
class Worker:
    proc: subprocess.Popen[str]
    lines: list[str]
    metrics_port: int

    def wait_for(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(needle in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"alert worker never logged {needle!r}:\n{''.join(self.lines[-20:])}")
            time.sleep(0.05)

    def metric(self, name: str) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        return sum(float(m) for m in re.findall(rf"(?m)^{name}(?:{{[^}}]*}})? (\S+)$", text))


def start_worker(db_url: str, mqtt_url: str) -> Worker:
    port = free_port()
    env = {**os.environ, "SAFEWATCH_DB__URL": db_url, "SAFEWATCH_MQTT__URL": mqtt_url, "SAFEWATCH_LOG_JSON": "true",
           "SAFEWATCH_ALERTS__METRICS_PORT": str(port), "SAFEWATCH_ALERTS__WORKER_ID": f"bench-{uuid.uuid4().hex[:8]}",
           "SAFEWATCH_ALERTS__HOUSEKEEPING_S": "3600", "SAFEWATCH_API__HOST": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "safewatch.cli", "alerts"], env=env, stderr=subprocess.PIPE,
                            text=True)
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    worker = Worker(proc, lines, port)
    worker.wait_for('"subscribed"', 60)
    return worker


def run_latency(args: argparse.Namespace) -> dict[str, Any]:
    name = f"safewatch_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db_url = with_database(ADMIN_URL, name)
    broker = PrivateBroker(shipped=True).start()
    worker: Worker | None = None
    try:
        storage = migrate(db_url)
        registry = demo_registry(parse_divisions(shipped_divisions_text()), args.equipment, seed=3,
                                 gateway_prefix="bench")
        with psycopg.connect(db_url) as c:
            load_divisions(c)
            insert_registry(c, registry)
        league = {g["id"]: g["league_code"] for g in registry.gateways}
        fleet = [SimEquipment(e["code"], e["category"], e["rated"], e["gateway_id"], league[e["gateway_id"]],
                              e["variety"]) for e in registry.equipment]
        worker = start_worker(db_url, broker.url)
        result = _publish_and_measure(args, fleet, broker.url, db_url, worker)
        result["storage"] = storage
        return result
    finally:
        if worker is not None:
            worker.proc.terminate()
            worker.proc.wait(timeout=30)
        broker.close()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _publish_and_measure(args: argparse.Namespace, fleet: list[SimEquipment], mqtt_url: str, db_url: str,
                         worker: Worker) -> dict[str, Any]:
    sim = Simulation(fleet, seed=9)
    client = connect_publisher(MqttSettings(url=mqtt_url), client_id="bench-alerts-publisher")
    rng = random.Random(4)
    candidates = [e for e in fleet if HIGH_HIGH[e.category][1] in e.rated]
    rng.shuffle(candidates)
    injected: dict[str, float] = {}  # code → wall time just before its publish
    pending = []
    messages = readings = 0
    t0 = time.time()
    next_tick, next_inject, next_slice = t0, t0 + WARMUP_S, t0
    queue: list[Any] = []
    per_slice = 1
    inject_every = 1.0 / args.injections_per_s
    end = t0 + WARMUP_S + args.seconds
    evaluated_before = None
    while time.time() < end:
        now = time.time()
        if now >= next_tick:
            # Gateways are not synchronised: each tick's messages go out spread over the interval.
            queue += [o for o in sim.tick(int(now * 1000), args.interval) if o.action == "publish"]
            per_slice = max(1, -(-len(queue) // SLICES))
            readings = sim.counters.readings
            next_tick += args.interval
        if queue and now >= next_slice:
            for o in queue[:per_slice]:
                pending.append(client.publish(o.topic, o.payload, qos=1, retain=o.retain))
                messages += 1
            del queue[:per_slice]
            next_slice = now + args.interval / SLICES
        if now >= next_inject and candidates:
            if evaluated_before is None:
                evaluated_before = (worker.metric("safewatch_alerts_readings_evaluated_total"), now)
            e = candidates.pop()
            metric, param, factor, _ = HIGH_HIGH[e.category]
            payload = orjson.dumps({"ts": int(now * 1000) + 1,
                                    "readings": [{"equipment": e.code, "values": {metric: factor * e.rated[param]}}]})
            topic = f"se/v1/{e.league}/{e.gateway_id}/telemetry"
            injected[e.code] = time.time()
            pending.append(client.publish(topic, payload, qos=1))
            next_inject += inject_every
        if len(pending) > 5000:
            for info in pending:
                info.wait_for_publish(30)
            pending.clear()
        time.sleep(max(0.0, min(next_tick, next_inject, next_slice if queue else next_tick) - time.time()))
    for info in pending:
        info.wait_for_publish(30)
    publish_s = time.time() - t0
    rules = [v[3] for v in HIGH_HIGH.values()]
    deadline = time.monotonic() + 60
    committed: dict[str, float] = {}
    while time.monotonic() < deadline:
        with psycopg.connect(db_url) as c:
            committed = {code: at for code, at in c.execute(SELECT_INJECTED, (rules,)) if code in injected}
        if len(committed) == len(injected):
            break
        time.sleep(0.2)
    evaluated_after = (worker.metric("safewatch_alerts_readings_evaluated_total"), time.time())
    client.disconnect()
    client.loop_stop()
    latencies = sorted(committed[c] - injected[c] for c in committed)
    rate = 0.0
    if evaluated_before is not None:
        rate = (evaluated_after[0] - evaluated_before[0]) / (evaluated_after[1] - evaluated_before[1])
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    return {"equipment": len(fleet), "gateways": len({e.gateway_id for e in fleet}), "interval_s": args.interval,
            "messages_per_s": round(messages / publish_s, 1), "readings_per_s": round(readings / publish_s),
            "worker_readings_evaluated_per_s": round(rate), "injected": len(injected), "alerted": len(committed),
            "p50_ms": round(1000 * q[49], 1), "p99_ms": round(1000 * q[98], 1),
            "max_ms": round(1000 * latencies[-1], 1) if latencies else None}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.alerts", description=__doc__.splitlines()[0])
    parser.add_argument("--equipment", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between two readings of one equipment")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured publishing time")
    parser.add_argument("--injections-per-s", type=float, default=4.0)
    parser.add_argument("--quality-equipment", type=int, default=120)
    parser.add_argument("--quality-hours", type=float, default=12.0)
    parser.add_argument("--quality-fault-rate", type=float, default=0.05, help="faults per equipment-hour")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    print("machine:", machine(), flush=True)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (the 2 cores are shared)", flush=True)
    if not args.skip_latency:
        r = run_latency(args)
        print(f"latency: {r['equipment']} equipment on {r['gateways']} gateways every {r['interval_s']:g} s = "
              f"{r['messages_per_s']} messages/s, {r['readings_per_s']} readings/s published; the worker evaluated "
              f"{r['worker_readings_evaluated_per_s']} readings/s ({r['storage']} storage)")
        print(f"latency: publish → alert committed over {r['alerted']}/{r['injected']} injected high-high breaches: "
              f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms "
              f"(goal p99 ≤ 250 ms: {r['p99_ms'] / 250:.2f} of it)", flush=True)
    if not args.skip_quality:
        started = time.time()
        q = run_quality(n=args.quality_equipment, hours=args.quality_hours, fault_rate=args.quality_fault_rate)
        s = q.summary()
        print(f"quality: {s['equipment']} equipment × {s['hours']:g} h of event time, {s['faults']} injected faults "
              f"({s['safety_faults']} safety-limit) in {time.time() - started:.0f} s")
        print(f"quality: recall {s['recall']:.3f} all faults, {s['safety_recall']:.3f} safety-limit faults "
              f"(of those observable: {s['observable_safety_recall']:.3f} of {s['observable_safety_faults']}); "
              f"event-time latency fault start → alert p50 {s['safety_latency_s_p50']} s, "
              f"p99 {s['safety_latency_s_p99']} s")
        print(f"quality: {s['alerts']} alerts annunciated, {s['false_alerts']} outside every fault window: "
              f"{s['false_per_equipment_day']:.3f} false alerts per equipment-day; by rule {s['false_by_rule']}")
        print(f"quality: missed {s['missed']}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
