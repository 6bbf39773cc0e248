"""Periodic upkeep the service does itself on plain PostgreSQL (TimescaleDB's policies do it there).

- Rollups: recompute the 1-minute and 1-hour buckets the writers marked (safewatch_refresh_rollups),
  each once its writers have left it (no mark for 10 s, or 2 min after its first: schema 033).
- Retention: drop the daily partitions of the readings and of their 1-minute rollups older than
  `RETENTION` (TimescaleDB: add_retention_policy with the same interval, schemas 032 and 035).
- Partitions: create the daily partitions a week ahead.
On TimescaleDB the SQL functions are no-ops, so the worker calls them without asking which storage.

TimescaleDB only: readings older than the continuous aggregates' refresh policies reach (8 days), such
as dead letters reprocessed weeks later, are recorded by TimescaleDB as invalidations that no policy
ever refreshes, so their rollups stayed stale while plain storage recomputed them. `refresh_late_rollups`
refreshes the aggregates from just inside retention up to where the policies start; TimescaleDB
materialises only the invalidated buckets in that span, so with nothing late it reads next to nothing.
The span stops short of retention: dropping a chunk past retention invalidates its span too, and
refreshing that would delete the hourly rollups kept for good.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from safewatch.schema.layout import READING_TABLES, RETENTION

# Buckets are refreshed once this far behind the clock: the current minute is still filling.
SETTLE = timedelta(seconds=5)

REFRESH_ROLLUPS = "SELECT safewatch_refresh_rollups(%s)"
DROP_OLD_PARTITIONS = "SELECT safewatch_drop_old_partitions(%s)"
# TimescaleDB: how far back the continuous aggregates' policies refresh (schema 032), and the margin
# kept from retention (a day: retention drops whole daily chunks once wholly past it).
POLICY_REACH = timedelta(days=8)
RETENTION_MARGIN = timedelta(days=1)
REFRESH_AGGREGATE_SPAN = "CALL refresh_continuous_aggregate(%s, %s, %s)"


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
    """TimescaleDB: fold readings written older than the policies' reach into the rollups, minutes first.

    Runs outside a transaction (TimescaleDB refuses a refresh inside one); an aggregate another session is
    refreshing (its lock held, or a deadlock with a policy's job) is left to the next call.
    """
    now = now or datetime.now(UTC)
    start, end = now - RETENTION + RETENTION_MARGIN, now - POLICY_REACH
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        for aggregate in [t.minute for t in READING_TABLES] + [t.hour for t in READING_TABLES]:
            try:
                conn.execute(REFRESH_AGGREGATE_SPAN, (aggregate, start, end))
            except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
                continue  # a concurrent refresh or policy holds it: the next call catches up
    finally:
        conn.autocommit = autocommit
