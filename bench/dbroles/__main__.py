"""What the database roles' grants step costs a migration: ``python -m bench.dbroles [--runs 10]``.

A fresh, fully migrated database (plain storage) on the PostgreSQL server at SAFEWATCH_BENCH_DB_URL (default
the local one), dropped at the end. `apply_grants` (safewatch/schema/roles.py) runs ``--runs`` times, as
`migrate` runs it after every migration run; prints the median and the slowest, with the relations it
revokes from and the grants it makes, beside a whole no-op `migrate` (nothing to apply but the grants).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import psycopg

from bench.ingest.instances import SHARED_SERVER_URL
from bench.machine import brief
from safewatch.db import with_database
from safewatch.schema.migrate import migrate
from safewatch.schema.roles import ACCESS, apply_grants

COUNT_RELATIONS = "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind <> 'i'"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    name = f"safewatch_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SHARED_SERVER_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(SHARED_SERVER_URL, name)
    try:
        migrate(url, storage="plain")
        with psycopg.connect(url, autocommit=True) as conn:
            relations = conn.execute(COUNT_RELATIONS).fetchone()[0]  # type: ignore[index]
            server = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                apply_grants(conn)
                times.append(time.perf_counter() - started)
        started = time.perf_counter()
        migrate(url)
        whole = time.perf_counter() - started
    finally:
        with psycopg.connect(SHARED_SERVER_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    print(brief() + f"; PostgreSQL {server}")
    print(f"apply_grants over {relations} relations (tables, partitions, views, sequences), "
          f"{sum(len(v) for v in ACCESS.values())} table grants: median {statistics.median(times) * 1000:.0f} ms, "
          f"slowest {max(times) * 1000:.0f} ms of {args.runs} runs; a no-op migrate with it: {whole * 1000:.0f} ms")


if __name__ == "__main__":
    main()
