"""The alert engine alone, past its learning period: CPU per message, and where it goes.

``python -m bench.alerts.engine [--equipment 400] [--warm 760] [--measure 200] [--repeats 4] [--entries 1]
[--restored] [--no-rows]``

Pure (no broker, no database): ``--equipment`` equipment of the bench fleet's mix (a quarter boilers,
the rest elevators; one gateway), each sent one message of 8 readings a second of event time, in
batches of one message per equipment (``--entries 50``: a message carries 50 equipment, as a gateway
batching them does, shape (b) of ``bench.ingest``), through `alerts.worker.Engine.evaluate`, the
worker's own code from decode to effects. The first ``--warm`` instants bring every anomaly detector past its learning
period (720 readings), which the 20-second runs of ``bench.ingest`` never reach; then ``--measure``
instants are timed, ``--repeats`` times, and the best is printed (CPU time of this process, so other
load on the machine inflates it less). The heap is settled as the worker settles it. ``--restored``
skips the warm-up: every equipment's detectors are restored past learning, as ``bench.ingest`` does
(for a fleet of 20,000). ``--no-rows`` holds every equipment as a state (`Engine(columns=False)`),
the engine before settled equipment became rows. The peak RSS of the process is printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from typing import Any

import numpy as np

from alerts.store import EquipmentInfo
from alerts.worker import Engine
from bench.ingest.publisher import entry
from safewatch.mqtt import Delivery
from safewatch.runtime import settle_heap

BOILER_RATED = {"rated_pressure": 1.25, "safety_valve_low": 1.3, "safety_valve_high": 1.325, "rated_evaporation": 4}
ELEVATOR_RATED = {"rated_speed": 1.75, "rated_load": 1000, "floors": 20}
TOPIC = "se/v1/150100/bench-gw/telemetry"


def fleet(n: int) -> list[EquipmentInfo]:
    infos = []
    for i in range(n):
        boiler = i % 4 == 0
        code = ("1100" if boiler else "3110") + "15" + f"{i:012d}"
        rated = BOILER_RATED if boiler else ELEVATOR_RATED
        infos.append(EquipmentInfo(i + 1, code, "1000" if boiler else "3000", rated, "150102", "150100", "in_use",
                                   "bench-gw"))
    return infos


def messages(infos: list[EquipmentInfo], ts_ms: int, k: int, *, stuck: bool = False,
             entries: int = 1) -> list[Delivery]:
    """One telemetry message per equipment at ``ts_ms``, the ``k``-th instant (the bench publisher's
    in-range values, moving from instant to instant as live equipment's do).

    ``stuck``: every equipment repeats its values at each instant, as all runs before 2026-12-05 did
    (with 400 equipment ``k * 400 + j`` cycles with the equipment alone): every boiler's flatline
    alarms open and stay active, the engine's costly path.
    """
    parts = [entry(e.code.encode(), e.category, ts_ms, k * len(infos) + j if stuck else k + j)
             for j, e in enumerate(infos)]
    return [Delivery(TOPIC, b'{"readings":[' + b",".join(parts[i:i + entries]) + b"]}", 0, 1, 1, 0.0)
            for i in range(0, len(parts), entries)]


def trained_states(warm: int = 760, *, stuck: bool = False) -> dict[str, dict[str, Any]]:
    """Engine states past the learning period, by category ('1000' boiler, '3000' elevator), as saved.

    One boiler and one elevator are fed ``warm`` instants of the bench publisher's values; only the
    anomaly detectors are kept (no conditions, never heard from), so a worker that restores them for
    every equipment starts as a long-running one would, with nothing open and no silence to judge.
    """
    infos = fleet(2)
    engine = Engine()
    engine.add(infos)
    now = int(time.time() * 1000)
    t0 = now - 24 * 3_600_000
    for k in range(warm):
        engine.evaluate(messages(infos, t0 + k * 1000, k, stuck=stuck), now)
    plain = engine.plain_states()
    return {info.category: {**plain[info.id], "conditions": {}, "windows": {}, "changes": {}, "suppressed": [],
                            "last_seen_ms": None} for info in infos}


def split(deliveries: list[Delivery], max_bytes: int) -> list[list[Delivery]]:
    """Consecutive batches of at most ``max_bytes`` of payload (one delivery at least); 0: one batch."""
    if not max_bytes:
        return [deliveries]
    batches: list[list[Delivery]] = [[]]
    size = 0
    for d in deliveries:
        if batches[-1] and size + len(d.payload) > max_bytes:
            batches.append([])
            size = 0
        batches[-1].append(d)
        size += len(d.payload)
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.alerts.engine", description=__doc__.splitlines()[0])
    parser.add_argument("--equipment", type=int, default=400)
    parser.add_argument("--warm", type=int, default=760, help="instants before measuring (learning is 720)")
    parser.add_argument("--measure", type=int, default=200, help="instants measured per repeat")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--entries", type=int, default=1, help="equipment per message (50: shape (b))")
    parser.add_argument("--batch-bytes", type=int, default=0,
                        help="split each instant into batches of at most this much payload, as the worker's "
                             "SAFEWATCH_ALERTS__BATCH_MAX_BYTES does (131072); 0: one batch an instant")
    parser.add_argument("--restored", action="store_true", help="restore trained detectors instead of warming up")
    parser.add_argument("--no-rows", action="store_true", help="every equipment a state, none a row")
    parser.add_argument("--stuck", action="store_true",
                        help="values repeat at every instant: every boiler in flatline alarm (the old runs' load)")
    args = parser.parse_args()
    print(f"machine: {platform.platform()}; {os.cpu_count()} CPUs; Python {platform.python_version()}; "
          f"numpy {np.__version__}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    infos = fleet(args.equipment)
    engine = Engine(columns=not args.no_rows)
    engine.add(infos)
    t0 = int(time.time() * 1000) - 24 * 3_600_000
    now = int(time.time() * 1000)
    effects = 0
    if args.restored:
        trained = trained_states(args.warm, stuck=True)
        engine.restore({info.id: trained[info.category] for info in infos})
        args.warm = 0
    for k in range(args.warm):
        effects += len(engine.evaluate(messages(infos, t0 + k * 1000, k, stuck=args.stuck), now)[0])
    settle_heap()
    best, evaluated = float("inf"), 0
    for r in range(args.repeats):
        base = args.warm + r * args.measure
        batches = [batch for k in range(args.measure) for batch in split(
            messages(infos, t0 + (base + k) * 1000, base + k, stuck=args.stuck, entries=args.entries),
            args.batch_bytes)]
        started = time.process_time()
        for batch in batches:
            found, evaluated = engine.evaluate(batch, now)
            effects += len(found)
        best = min(best, time.process_time() - started)
    n = args.measure * len(infos)
    stuck = " (values stuck: every boiler's flatline alarms active)" if args.stuck else ""
    print(f"{len(infos)} equipment ({len(infos[::4])} boilers, the rest elevators){stuck}, {args.warm} instants of "
          f"warm-up, then {args.measure} timed x {args.repeats} (best), {args.entries} equipment a message"
          f"{f', batches of at most {args.batch_bytes:,} bytes' if args.batch_bytes else ''}: "
          f"{best / n * 1e6:.1f} µs CPU per equipment's 8 readings = {n * 8 / best:,.0f} readings/s on one core "
          f"({evaluated} readings in the last batch; "
          f"{effects} alert changes in all, from the publisher's plausible values); "
          f"{'every equipment a state' if args.no_rows else f'{len(engine.columns)} equipment as rows'}; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
