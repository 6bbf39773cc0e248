"""The cost of the alert engine's checkpoint: packing every changed equipment's state, and writing it.

``python -m bench.alerts.checkpoint [--equipment 20000] [--instants 10] [--repeats 3]``

The bench fleet of ``bench.alerts.engine`` (a quarter boilers, the rest elevators), every anomaly
detector restored past learning as ``bench.ingest`` starts it. A first checkpoint writes every state and
every detector's tables whole (as a worker's first after a start), and is not counted. Then, ``--repeats``
times: ``--instants`` instants evaluated for every equipment (so every state has changed: the steady state
of shape (b), where each equipment reports several times a checkpoint interval), then ``Engine.checkpoint``
(pack) and ``save_checkpoint`` (COPY + upsert into a database of its own on the shared PostgreSQL,
committed). Printed per checkpoint and per equipment, the best of the repeats: the worker's CPU time to
pack, the wall time to write, the CPU time PostgreSQL's backend spent writing (read from /proc: the
server must run on this machine), the bytes handed over and the WAL written meanwhile (server-wide: other
databases' writes count too). CPU times and bytes hold better than wall times on a machine other work loads.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from alerts.store import save_checkpoint
from alerts.worker import Engine
from bench.alerts.engine import fleet, messages, trained_states
from bench.machine import brief
from safewatch.db import with_database
from safewatch.registry.divisions import load_divisions
from safewatch.schema.migrate import migrate

INSERT_GATEWAY = "INSERT INTO gateways (id, league_code, name) VALUES ('bench-gw', '150100', 'bench')"
INSERT_EQUIPMENT = """
INSERT INTO equipment (id, code, category, variety, banner_code, rated, gateway_id)
OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s, %s, '150102', %s, 'bench-gw')
"""
SELECT_BACKEND = "SELECT pg_backend_pid(), pg_current_wal_lsn()"
SELECT_WAL_SINCE = "SELECT pg_current_wal_lsn() - %s::pg_lsn"
_TICKS = os.sysconf("SC_CLK_TCK")


def backend_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a PostgreSQL backend so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.alerts.checkpoint", description=__doc__.splitlines()[0])
    parser.add_argument("--equipment", type=int, default=20_000)
    parser.add_argument("--instants", type=int, default=10, help="instants of every equipment a checkpoint")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--server", default=os.environ.get("SAFEWATCH_TEST_DB_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    print(brief())
    infos = fleet(args.equipment)
    engine = Engine()
    engine.add(infos)
    trained = trained_states()
    engine.restore({info.id: trained[info.category] for info in infos})
    now = int(time.time() * 1000)
    t0 = now - 3_600_000
    name = f"safewatch_bench_ckpt_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(args.server, name)
    try:
        migrate(url, storage="plain")
        with psycopg.connect(url) as c:
            load_divisions(c)
            c.execute(INSERT_GATEWAY)
            with c.cursor() as cur:
                cur.executemany(INSERT_EQUIPMENT, [(i.id, i.code, i.category, i.code[:4], Jsonb(i.rated))
                                                   for i in infos])
            c.commit()
            best: dict[str, float] = {}
            k = 0
            for r in range(args.repeats + 1):
                for _ in range(args.instants if r else 1):
                    engine.evaluate(messages(infos, t0 + k * 1000, k, entries=50), now)
                    k += 1
                assert len(engine.dirty) == len(infos)
                started = time.process_time()
                packed, shard = engine.checkpoint(())
                pack_s = time.process_time() - started
                row = c.execute(SELECT_BACKEND).fetchone()
                assert row is not None
                pid, lsn = row
                cpu = backend_cpu_s(pid)
                started = time.perf_counter()
                with c.transaction():
                    save_checkpoint(c, leagues=["150100"], equipment=packed, shard=shard)
                write_s = time.perf_counter() - started
                backend_s = backend_cpu_s(pid) - cpu
                wal_row = c.execute(SELECT_WAL_SINCE, (lsn,)).fetchone()
                assert wal_row is not None
                c.commit()
                if r == 0:
                    continue  # the first checkpoint writes everything whole
                figures = {"pack": pack_s, "write": write_s, "backend": backend_s, "wal": float(wal_row[0]),
                           "bytes": float(sum(len(part or b"") for parts in packed.values() for part in parts))}
                for key, value in figures.items():
                    best[key] = min(best.get(key, value), value)
        n = len(infos)
        print(f"{n} equipment ({len(infos[::4])} boilers, the rest elevators), detectors past learning, "
              f"{args.instants} instants each a checkpoint; best of {args.repeats}: "
              f"pack {best['pack']:.2f} s CPU ({best['pack'] / n * 1e6:.0f} µs an equipment), "
              f"write {best['write']:.2f} s ({best['write'] / n * 1e6:.0f} µs an equipment; PostgreSQL's backend "
              f"{best['backend']:.2f} s CPU), {best['bytes'] / 2**20:.1f} MiB written "
              f"({best['bytes'] / n:.0f} B an equipment), WAL {best['wal'] / 2**20:.1f} MiB (server-wide)")
    finally:
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
