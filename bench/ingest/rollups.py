"""What one rollup refresh costs PostgreSQL as history grows (plain storage, where the service keeps them).

``python -m bench.ingest.rollups [--equipment 2000] [--hours 24] [--schema 33,34]``

For each schema version: a fresh database migrated up to it; ``--hours`` of 1-minute and 1-hour rollups
of ``--equipment`` equipment (8 metrics each) already stored, ending at minute 57 of the current hour;
then minute 58 of readings (8 a second per equipment) written the service's way, marking the minute,
and the refresh timed (the backend's CPU and the wall clock); then the same for minute 59.
Schema 33 finds a bucket's rollups by scanning the whole rollup tables, groups the narrow view's
readings by equipment and metric, and re-aggregates the hour from its minutes; 34 reads the bucket
alone, aggregates the wide tables column by column, and adds the minute to its hour (the migration
034_rollup_buckets_indexed.plain.sql says why; docs/decisions/rollups.md has the figures).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from bench.ingest.instances import SHARED_SERVER_URL, cpu_of
from ingest.batching import Batch, Readings
from ingest.rollups import refresh_rollups
from ingest.writer import ensure_partitions, prepare, write_batch
from safewatch.db import one_row, with_database
from safewatch.schema.migrate import migrate

# The history, straight in SQL: every equipment and metric at every minute, then every hour.
FILL_MINUTES = """
INSERT INTO readings_1m (bucket, equipment_id, metric_id, avg, min, max, n, sum)
SELECT m, e, k, 1.0, 0.5, 1.5, 60, 60.0
FROM generate_series(%(first)s::timestamptz, %(last)s::timestamptz, interval '1 minute') AS m,
     generate_series(1, %(equipment)s) AS e, generate_series(1, 8) AS k
"""
FILL_HOURS = """
INSERT INTO readings_1h (bucket, equipment_id, metric_id, avg, min, max, n, sum)
SELECT date_trunc('hour', bucket), equipment_id, metric_id, sum(sum) / sum(n), min(min), max(max), sum(n), sum(sum)
FROM readings_1m GROUP BY 1, 2, 3
"""


ELEVATOR = ("service_mode", "car_moving", "direction", "door_zone", "floor", "door_locked", "passenger_present",
            "speed")  # what the bench fleet's elevators report


def _minute_of_readings(equipment: int, minute: datetime) -> Batch:
    """Every equipment's 8 elevator readings each second of ``minute``."""
    readings = Readings()
    start = int(minute.timestamp() * 1000)
    for second in range(60):
        values = dict.fromkeys(ELEVATOR, 1.0 + second / 60)
        for eq_id in range(1, equipment + 1):
            readings.add(eq_id, start + second * 1000, values)
    return Batch(readings=readings)


def run(schema: int, equipment: int, hours: int) -> None:
    name = f"safewatch_bench_rollups_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SHARED_SERVER_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = with_database(SHARED_SERVER_URL, name)
    try:
        migrate(url, storage="plain", upto=schema)
        now = datetime.now(UTC)
        hour = now.replace(minute=0, second=0, microsecond=0)
        last = hour + timedelta(minutes=57)  # the history ends at minute 57; minute 58 is written below
        first = last - timedelta(hours=hours) + timedelta(minutes=1)
        with psycopg.connect(url) as conn:
            started = time.monotonic()
            conn.execute(FILL_MINUTES, {"first": first, "last": last, "equipment": equipment})
            conn.execute(FILL_HOURS)
            conn.commit()
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE readings_1m, readings_1h")
            conn.autocommit = False
            rows = one_row(conn.execute("SELECT count(*) FROM readings_1m"))[0]
            print(f"schema {schema}: {rows:,} minute rollups stored ({hours} h of {equipment:,} equipment x 8 "
                  f"metrics), filled in {time.monotonic() - started:.0f} s")
            ensure_partitions(conn, now)
            assert prepare(conn)
            pid = one_row(conn.execute("SELECT pg_backend_pid()"))[0]
            for minute in (last + timedelta(minutes=1), last + timedelta(minutes=2)):
                write_batch(conn, _minute_of_readings(equipment, minute), mark_rollups=True)
                cpu0, wall0 = cpu_of([pid]), time.monotonic()
                refreshed = refresh_rollups(conn, minute + timedelta(minutes=5))
                cpu, wall = cpu_of([pid]) - cpu0, time.monotonic() - wall0
                print(f"  refresh of minute {minute:%H:%M} ({refreshed} minute, {equipment * 60 * 8:,} readings): "
                      f"PostgreSQL {cpu:.2f} s CPU, {wall:.2f} s wall")
    finally:
        with psycopg.connect(SHARED_SERVER_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest.rollups", description=__doc__.splitlines()[0])
    parser.add_argument("--equipment", type=int, default=2000)
    parser.add_argument("--hours", type=int, default=24, help="rollup history already stored")
    parser.add_argument("--schema", default="33,34", help="schema versions to compare")
    args = parser.parse_args()
    with psycopg.connect(SHARED_SERVER_URL) as c:
        version = one_row(c.execute("SHOW server_version"))[0]
    print(f"machine: {platform.platform()}; {os.cpu_count()} CPUs; Python {platform.python_version()}; "
          f"PostgreSQL {version}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for schema in (int(s) for s in args.schema.split(",")):
        run(schema, args.equipment, args.hours)


if __name__ == "__main__":
    main()
