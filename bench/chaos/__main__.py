"""Chaos bench, long: ``python -m bench.chaos [--duration 300] [--outage 60] [--equipment 300]``.

The run of tests/system/test_chaos.py (bench/chaos/harness.py) at a longer length, a larger fleet and a
60 s PostgreSQL outage: a counted stream through private PostgreSQL and Mosquitto and the ingest, alert and
notifier processes; bad messages (NUL in an equipment code, 130,000-entry arrays, NUL in event details);
kill -9 of each worker, a PostgreSQL restart, the outage, kill -9 of the broker. Prints the machine, what
was done and every failed check; exits 1 when a check failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from bench.chaos.harness import ChaosConfig, chaos, describe
from bench.machine import with_broker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=300.0, help="wall seconds of the stream")
    parser.add_argument("--ticks", type=int, default=700,
                        help="readings per equipment (1 s of event time each; below the anomaly detectors' "
                             "720-reading learning period, so only the threshold breaches alert)")
    parser.add_argument("--equipment", type=int, default=300, help="demo-registry fleet size (one message each a tick)")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds of PostgreSQL outage")
    parser.add_argument("--rss-bound-mib", type=float, default=ChaosConfig.rss_bound_mib)
    parser.add_argument("--no-bad-messages", action="store_true", help="the faults alone")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # so the private services are removed
    cfg = ChaosConfig(equipment=args.equipment, ticks=args.ticks, tick_s=args.duration / args.ticks,
                      outage_s=args.outage, rss_bound_mib=args.rss_bound_mib, wait_s=max(120.0, 2 * args.outage),
                      bad_messages=not args.no_bad_messages)
    print(with_broker())
    print(f"chaos run: {describe(cfg)}", flush=True)
    with chaos(cfg, log=lambda s: print(f"  {s}", flush=True)) as run:
        result = run.run()
    print(result.summary())
    failures = result.failures()
    for failure in failures:
        print(f"FAILED: {failure[:2000]}")
    print("PASSED: every check" if not failures else f"{len(failures)} check(s) failed")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
