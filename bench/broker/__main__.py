"""Broker durability bench: ``python -m bench.broker [--settings ...] [--backlog 300000] [--rate 30000]``.

For each Mosquitto persistence setting, in turn and ``--repeat`` times (alternating, the machine is shared):
a private Mosquitto from deploy/mosquitto/mosquitto.conf with that setting, a persistent subscriber offline
(as when the ingest's database is down), a backlog of ``--backlog`` QoS 1 messages, then ``--rate``
messages/s for ``--steady`` seconds, kill -9 of the broker a random moment into the steady phase (at least
half-way), restart, and the subscriber takes everything (bench/broker/durability.py). Prints per trial:
the steady rate the broker acknowledged with the backlog queued, its CPU, the snapshots written, the longest
stall (a snapshot blocks Mosquitto's only thread), the restart time, and the acknowledged messages lost
(count, and the seconds between the first lost PUBACK and the kill: the loss window).

A setting is ``name=value[;name=value]``, e.g. ``autosave_interval=1`` or
``autosave_on_changes=true;autosave_interval=1000``.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
from collections import defaultdict

from bench.broker.durability import BacklogTooSlow, Trial, run_trial, snapshot_seconds
from bench.machine import with_broker

DEFAULT_SETTINGS = ("autosave_interval=30", "autosave_interval=5", "autosave_interval=1",
                    "autosave_on_changes=true;autosave_interval=100000",
                    "autosave_on_changes=true;autosave_interval=10000",
                    "autosave_on_changes=true;autosave_interval=1000")


def parse_setting(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(";") if part)


def line(setting: str, t: Trial) -> str:
    return (f"  {setting:<52} steady {t.steady_rate:>8,.0f} msg/s acked (offered {t.rate:,.0f}); broker CPU "
            f"{t.broker_cpu_s / t.steady_s:.2f} cores; {t.snapshots} snapshots; longest stall "
            f"{t.longest_stall_s:.2f} s; backlog taken in {t.backlog_s:.1f} s; restart {t.restart_s:.2f} s; "
            f"acknowledged {t.acked:,}, lost {len(t.lost):,} ({t.lost_window_s:.2f} s before the kill)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS))
    parser.add_argument("--backlog", type=int, default=300_000,
                        help="messages queued for the offline subscriber before the steady phase")
    parser.add_argument("--rate", type=float, default=30_000, help="offered messages/s in the steady phase")
    parser.add_argument("--steady", type=float, default=20.0, help="seconds of the steady phase (at most)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--snapshot-sizes", default="",
                        help="instead of the trials: time one snapshot with these many messages queued "
                             "(comma-separated, e.g. 10000,300000,2000000)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # so the private brokers are stopped
    rng = random.Random(args.seed)
    print(with_broker())
    if args.snapshot_sizes:
        for queued, seconds, size in snapshot_seconds([int(q) for q in args.snapshot_sizes.split(",")]):
            print(f"  snapshot with {queued:>9,} messages queued: {seconds:.2f} s ({size / 2**20:,.0f} MiB)",
                  flush=True)
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        return
    print(f"backlog {args.backlog:,} messages of {len(b'0 ') + 280} bytes, offered {args.rate:,.0f} msg/s, kill -9 "
          f"between {args.steady / 2:.0f} and {args.steady:.0f} s into the steady phase, {args.repeat} rounds")
    results: dict[str, list[Trial]] = defaultdict(list)
    for n in range(args.repeat):
        print(f"round {n + 1}")
        for setting in args.settings:
            try:
                t = run_trial(parse_setting(setting), backlog=args.backlog, rate=args.rate, steady_s=args.steady,
                              kill_at=lambda: rng.uniform(args.steady / 2, args.steady))
            except BacklogTooSlow as exc:
                print(f"  {setting:<52} {exc}")
                continue
            results[setting].append(t)
            print(line(setting, t), flush=True)
    print("summary (min..max over the rounds)")
    for setting, trials in results.items():
        rates = [t.steady_rate for t in trials]
        lost = [len(t.lost) for t in trials]
        windows = [t.lost_window_s for t in trials]
        stalls = [t.longest_stall_s for t in trials]
        print(f"  {setting:<52} steady {min(rates):,.0f}..{max(rates):,.0f} msg/s (median "
              f"{statistics.median(rates):,.0f}); lost {min(lost):,}..{max(lost):,} acknowledged messages, "
              f"window {min(windows):.2f}..{max(windows):.2f} s; longest stall {max(stalls):.2f} s")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
