"""What compressing the rollups saves (schema 042): the 1-minute rollups of a day of readings, before and after.

Needs a PostgreSQL with TimescaleDB preloaded: SAFEWATCH_TEST_DB_URL (a fresh database is made and dropped).

    python -m bench.ingest.rollup_compression --equipment 200 --every-s 10

Prints the 1-minute and 1-hour rollups' size uncompressed and compressed, per equipment-day.
"""

from __future__ import annotations

import argparse
import os
import uuid

import psycopg

from bench.machine import brief
from safewatch.db import with_database
from safewatch.schema.migrate import migrate

# A day of elevator readings ten days ago (past the compression policies' 9 days): speed, load and floor
# moving, the rest steady, as the simulators' elevators.
FILL = """
INSERT INTO elevator_readings (time, equipment_id, service_mode, car_moving, direction, door_zone, floor,
                               door_locked, passenger_present, mains_power, speed, load, run_hours, trips, door_cycles)
SELECT t, e, 0, (s %% 3 > 0)::int, s %% 2, (s %% 3 = 0)::int, s %% 12, 1, (s %% 5 = 0)::int, 1,
       abs(sin(s / 7.0)) * 1.75, (s * 37 %% 800)::float, 1000 + s / 360.0, 50000 + s / 30, 90000 + s / 20
FROM generate_series(1, %(equipment)s) AS e,
     generate_series(date_trunc('day', now() - interval '10 days'),
                     date_trunc('day', now() - interval '10 days') + interval '1 day' - interval '1 second',
                     %(every)s * interval '1 second') AS t,
     LATERAL (SELECT extract(epoch FROM t)::bigint + e * 13 AS s) x
"""
SIZE = "SELECT sum(total_bytes) FROM chunks_detailed_size(%s)"
COMPRESS = "SELECT count(compress_chunk(c)) FROM show_chunks(%s) c"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--equipment", type=int, default=200)
    parser.add_argument("--every-s", type=int, default=10, help="seconds between an equipment's readings")
    args = parser.parse_args()
    server = os.environ.get("SAFEWATCH_TEST_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"safewatch_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    try:
        if migrate(url, storage="timescale") != "timescale":
            raise SystemExit("TimescaleDB is not preloaded on that server; "
                             "point SAFEWATCH_TEST_DB_URL at one that has it")
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(FILL, {"equipment": args.equipment, "every": args.every_s})
            sizes = {}
            for rollup in ("elevator_readings_1m", "elevator_readings_1h"):
                c.execute("CALL refresh_continuous_aggregate(%s, NULL, NULL)", (rollup,))
                before = int(c.execute(SIZE, (rollup,)).fetchone()[0])  # type: ignore[index]
                c.execute(COMPRESS, (rollup,))
                after = int(c.execute(SIZE, (rollup,)).fetchone()[0])  # type: ignore[index]
                sizes[rollup] = (before, after)
            version = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()[0]  # type: ignore[index]
            pg = c.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"# {brief()}; PostgreSQL {pg}, TimescaleDB {version}")
    print(f"# {args.equipment} elevators, a reading every {args.every_s} s for one day")
    for rollup, (before, after) in sizes.items():
        print(f"{rollup}: {before / 2**20:.2f} MiB -> {after / 2**20:.2f} MiB compressed "
              f"({before / after:.1f}x); {before / args.equipment / 1024:.1f} -> {after / args.equipment / 1024:.1f} "
              f"KiB per equipment-day")


if __name__ == "__main__":
    main()
