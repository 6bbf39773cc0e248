"""Periodic upkeep the service does itself on plain PostgreSQL (TimescaleDB's policies do it there).

- Rollups: recompute the 1-minute and 1-hour buckets the writers marked (safewatch_refresh_rollups),
  each once its writers have left it (no mark for 10 s, or 2 min after its first: schema 033).
- Retention: drop the daily partitions of the readings and of their 1-minute rollups older than
  `RETENTION` (TimescaleDB: add_retention_policy with the same interval, schemas 032 and 035).
- Partitions: create the daily partitions a week ahead.
On TimescaleDB the SQL functions are no-ops, so the worker calls them without asking which storage.

TimescaleDB only: readings older than the continuous aggregates' refresh policies reach (8 days) are
rolled up by the job `safewatch_refresh_late_rollups` (schema 043), run by TimescaleDB as the aggregates'
owner; `refresh_late_rollups` runs the same procedure at once (tests, operators).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from safewatch.schema.layout import RETENTION

# Buckets are refreshed once this far behind the clock: the current minute is still filling.
SETTLE = timedelta(seconds=5)

REFRESH_ROLLUPS = "SELECT safewatch_refresh_rollups(%s)"
DROP_OLD_PARTITIONS = "SELECT safewatch_drop_old_partitions(%s)"
REFRESH_LATE_ROLLUPS = "CALL safewatch_refresh_late_rollups(NULL, %s)"


def refresh_rollups(conn: psycopg.Connection, now: datetime | None = None) -> int:
    """Recompute the marked minutes that have closed; return how many minutes were recomputed."""
    now = now or datetime.now(UTC)
    with conn.transaction():
        row = conn.execute(REFRESH_ROLLUPS, (now - SETTLE,)).fetchone()
    return int(row[0]) if row else 0


def drop_old_partitions(conn: psycopg.Connection, keep: timedelta = RETENTION) -> int:
    """Drop partitions of readings and 1-minute rollups wholly older than ``keep``; return how many."""
    with conn.transaction():
        row = conn.execute(DROP_OLD_PARTITIONS, (keep,)).fetchone()
    return int(row[0]) if row else 0


def refresh_late_rollups(conn: psycopg.Connection, now: datetime | None = None) -> None:
    """TimescaleDB: run the late-rollups job's procedure now, as its owner (schema 043), for the span
    before ``now``. Runs outside a transaction: TimescaleDB refuses a refresh inside one."""
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        conn.execute(REFRESH_LATE_ROLLUPS, (Jsonb({"now": (now or datetime.now(UTC)).isoformat()}),))
    finally:
        conn.autocommit = autocommit
