"""Narrow against wide readings under a sustained stream, not into an empty table.

``python -m bench.ingest.layout [--equipment 20000] [--instants 60] [--batch 1000] [--private-postgres SETTINGS]``

`bench.ingest`'s "COPY alone" ceiling writes into an empty table. The ingest's stream is different:
every instant touches every (equipment, metric) position of the primary key, so the index's working
set is the whole day's index and, after a checkpoint, every touched page goes whole into the WAL.
This writes the same stream both ways, each into a fresh table, with one writer committing every
``--batch`` equipment (8 readings each, as the ingest's batches of shape (a) hold), the COPY stream
packed by `ingest.copy_format` so Python is not what is measured:

- narrow: ``(time, equipment_id, metric_id, value)``, key ``(equipment_id, metric_id, time)`` (readings);
- wide: ``(time, equipment_id, m1 … m8)``, key ``(equipment_id, time)``: one row per equipment and instant.

It prints readings/s over each tenth of the run (the table grows as it goes) and the server
backend's CPU, on the shared server (a database of its own, dropped after) or, with
``--private-postgres``, on a private cluster with those postgresql.conf settings.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import uuid

import numpy as np
import psutil
import psycopg

from bench.ingest.instances import bench_server
from ingest.copy_format import pack, timestamptz_from_ms
from safewatch.db import one_row, with_database

METRICS = 8
CREATE_NARROW = """
CREATE TABLE layout_narrow (time timestamptz NOT NULL, equipment_id integer NOT NULL, metric_id smallint NOT NULL,
                            value double precision NOT NULL, PRIMARY KEY (equipment_id, metric_id, time))
"""
CREATE_WIDE = """
CREATE TABLE layout_wide (time timestamptz NOT NULL, equipment_id integer NOT NULL,
                          m1 float8, m2 float8, m3 float8, m4 float8, m5 float8, m6 float8, m7 float8, m8 float8,
                          PRIMARY KEY (equipment_id, time))
"""
COPY_NARROW = "COPY layout_narrow (time, equipment_id, metric_id, value) FROM STDIN (FORMAT BINARY)"
COPY_WIDE = "COPY layout_wide (time, equipment_id, m1, m2, m3, m4, m5, m6, m7, m8) FROM STDIN (FORMAT BINARY)"
BACKEND_PID = "SELECT pg_backend_pid()"


def narrow_stream(ids: np.ndarray, ts_ms: int, values: np.ndarray) -> bytes:
    n = len(ids)
    return pack([("timestamptz", timestamptz_from_ms(np.full(n * METRICS, ts_ms))),
                 ("int4", np.repeat(ids, METRICS)), ("int2", np.tile(np.arange(1, METRICS + 1), n)),
                 ("float8", values.reshape(-1))])


def wide_stream(ids: np.ndarray, ts_ms: int, values: np.ndarray) -> bytes:
    columns: list[tuple[str, np.ndarray]] = [("timestamptz", timestamptz_from_ms(np.full(len(ids), ts_ms))),
                                             ("int4", ids)]
    return pack(columns + [("float8", values[:, m]) for m in range(METRICS)])


def run_layout(url: str, layout: str, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(7)
    with psycopg.connect(url) as c:
        c.execute(CREATE_NARROW if layout == "narrow" else CREATE_WIDE)
        c.commit()
        backend = psutil.Process(one_row(c.execute(BACKEND_PID))[0])
        cpu0 = sum(backend.cpu_times()[:2])
        t0 = int(time.time() * 1000) - args.instants * 1000
        ids = np.arange(1, args.equipment + 1, dtype=np.int32)
        total = args.instants * args.equipment * METRICS
        tenth, done, marks = max(1, args.instants // 10), 0, []
        encode, statement = (narrow_stream, COPY_NARROW) if layout == "narrow" else (wide_stream, COPY_WIDE)
        started = last = time.perf_counter()
        with c.cursor() as cur:
            for k in range(args.instants):
                values = rng.normal(50.0, 5.0, size=(args.equipment, METRICS))
                for lo in range(0, args.equipment, args.batch):
                    part = slice(lo, lo + args.batch)
                    data = encode(ids[part], t0 + k * 1000, values[part])
                    with cur.copy(statement) as copy:
                        copy.write(data)
                    c.commit()
                done += args.equipment * METRICS
                if (k + 1) % tenth == 0:
                    now = time.perf_counter()
                    marks.append(tenth * args.equipment * METRICS / (now - last))
                    last = now
        elapsed = time.perf_counter() - started
        cpu = sum(backend.cpu_times()[:2]) - cpu0
        size = one_row(c.execute("SELECT pg_total_relation_size(%s)", (f"layout_{layout}",)))[0]
    print(f"  {layout:6s}: {total:,} readings in {elapsed:.1f} s = {total / elapsed:,.0f} readings/s; "
          f"backend CPU {cpu:.1f} s ({cpu / total * 1e6:.2f} µs a reading, {cpu / elapsed:.2f} cores); "
          f"{size / 2**20:,.0f} MiB on disk with its key")
    print(f"          readings/s by tenth of the run: {', '.join(f'{m:,.0f}' for m in marks)}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest.layout", description=__doc__.splitlines()[0])
    parser.add_argument("--equipment", type=int, default=20_000)
    parser.add_argument("--instants", type=int, default=60, help="seconds of the stream: every equipment once each")
    parser.add_argument("--batch", type=int, default=1000, help="equipment per COPY and commit")
    parser.add_argument("--private-postgres", metavar="SETTINGS", default=None,
                        help="a private cluster with these comma-separated postgresql.conf lines")
    args = parser.parse_args()
    with bench_server(args.private_postgres) as server:
        with psycopg.connect(server) as c:
            version = one_row(c.execute("SHOW server_version"))[0]
            buffers = one_row(c.execute("SHOW shared_buffers"))[0]
            wal = one_row(c.execute("SHOW max_wal_size"))[0]
        print(f"machine: {platform.platform()}; {os.cpu_count()} CPUs; PostgreSQL {version} (shared_buffers "
              f"{buffers}, max_wal_size {wal}); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{args.equipment:,} equipment x {METRICS} metrics, {args.instants} instants, one writer, a commit every "
              f"{args.batch:,} equipment:")
        for layout in ("narrow", "wide"):
            name = f"safewatch_layout_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            try:
                run_layout(with_database(server, name), layout, args)
            finally:
                with psycopg.connect(server, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
