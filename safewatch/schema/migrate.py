"""Apply the schema's migrations, idempotently, choosing TimescaleDB or plain storage once.

A short runner of our own rather than yoyo/alembic: the one thing ours needs that they lack is
choosing a migration variant per database from a capability detected at migration time.
Migrations are append-only; each runs in its own transaction under an advisory lock, so two
processes migrating at once apply each step exactly once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import psycopg

from safewatch.contract import METRICS
from safewatch.db import one_row
from safewatch.retry import backoff
from safewatch.schema.layout import READING_TABLES
from safewatch.schema.roles import RolesUnavailable, apply_grants

log = logging.getLogger(__name__)

_LOCK_KEY = 0x5AFE_3A7C  # pg_advisory_lock key for migrations
_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+?)(?:\.(timescale|plain))?\.sql$")

CREATE_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    variant    text,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS safewatch_meta (key text PRIMARY KEY, value text NOT NULL);
"""
SELECT_APPLIED = "SELECT version FROM schema_migrations"
RECORD_MIGRATION = "INSERT INTO schema_migrations (version, name, variant) VALUES (%s, %s, %s)"
RECORD_STORAGE = "INSERT INTO safewatch_meta (key, value) VALUES ('storage', %s) ON CONFLICT (key) DO NOTHING"
SELECT_STORAGE = "SELECT value FROM safewatch_meta WHERE key = 'storage'"
TIMESCALE_AVAILABLE = "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
UPSERT_METRIC = """
INSERT INTO metrics (id, key, unit, category) VALUES (%s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET key = EXCLUDED.key, unit = EXCLUDED.unit, category = EXCLUDED.category
"""


WIDE_ROLLUPS = 32  # the migration that makes the wide tables' continuous aggregates
POLICY_REACH = "8 days"  # how far back the continuous aggregates' refresh policies reach (schema 032)
HOLDS_OLDER_READINGS = f"SELECT EXISTS (SELECT 1 FROM readings WHERE time < now() - interval '{POLICY_REACH}')"
REFRESH_AGGREGATE = f"CALL refresh_continuous_aggregate(%s, NULL, now() - interval '{POLICY_REACH}')"


class StorageMismatch(RuntimeError):
    """Raised when a storage is asked of a database that was first migrated with the other one."""


def storage_mismatch_advice(*, have: str, asked: str) -> str | None:
    """Why migrating a database of storage ``have`` as ``asked`` is refused, and what to do; None if it is not."""
    if asked == have:
        return None
    if asked == "timescale":
        return ("this database was first migrated with plain storage; `--storage timescale` does not convert it. "
                "To move to TimescaleDB: create a new database on a server with TimescaleDB preloaded, run "
                "`safewatch migrate --storage timescale` against it, copy the data across, refresh the rollups "
                "and point SAFEWATCH_DB__URL at it (the steps: docs/deploying.md, \"TimescaleDB\")")
    return ("this database was first migrated with TimescaleDB storage; it cannot be turned back into plain "
            "storage in place. Run `safewatch migrate` without --storage to bring it up to date")


# Migrations that drop continuous aggregates, and which (TimescaleDB). A refresh of those aggregates
# running meanwhile made the drop fail: "tuple concurrently deleted" (the drop deletes the job's
# statistics row while the policy's worker updates it), or a deadlock (a manual refresh holding the
# invalidation threshold's row and waiting for the aggregate the drop holds): 3 in 25 fresh databases
# migrated under a concurrent refresh here. So the policies' jobs are deleted first, each in a
# transaction of its own (which cancels a running one), the migration waits for their workers to
# leave, and a drop that still meets a concurrent refresh is rolled back whole and tried again. Any
# migration on TimescaleDB is tried again so (042, altering the aggregates while their policies run,
# deadlocked once in 40 too): each is one transaction.
DROPS_AGGREGATES = {30: ("readings_1m", "readings_1h")}
SELECT_AGGREGATE_JOBS = """
SELECT job_id, application_name FROM timescaledb_information.jobs WHERE hypertable_name = ANY (%s)
"""
DELETE_JOB = "SELECT delete_job(%s)"
JOBS_RUNNING = """
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = ANY (%s)
"""
JOBS_LEAVE_S = 60.0
ATTEMPTS = 8


def _stop_aggregate_jobs(conn: psycopg.Connection, views: tuple[str, ...]) -> None:
    """Delete the jobs of the continuous aggregates ``views`` and wait until none of them still runs."""
    if not views:
        return
    jobs = conn.execute(SELECT_AGGREGATE_JOBS, (list(views),)).fetchall()
    for job_id, _ in jobs:
        with conn.transaction():
            conn.execute(DELETE_JOB, (job_id,))
    names = [name for _, name in jobs]
    deadline = time.monotonic() + JOBS_LEAVE_S
    for delay in backoff(initial_s=0.05, max_s=1.0):
        if not names or one_row(conn.execute(JOBS_RUNNING, (names,)))[0] == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the jobs of {', '.join(views)} still run {JOBS_LEAVE_S:.0f} s after being deleted; "
                               "stop them (SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE "
                               "application_name LIKE '%Continuous Aggregate%') and run `safewatch migrate` again")
        time.sleep(delay)


def met_a_concurrent_refresh(exc: BaseException) -> bool:
    """Whether ``exc`` is a catalog change of TimescaleDB's meeting a concurrent refresh (worth a retry)."""
    if isinstance(exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure):
        return True
    return isinstance(exc, psycopg.errors.InternalError_) and "concurrently" in str(exc)


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    """Apply one migration in its own transaction, recording it."""
    with conn.transaction():
        conn.execute(migration.sql)
        conn.execute(RECORD_MIGRATION, (migration.version, migration.name, migration.variant))


def _apply_on_timescale(conn: psycopg.Connection, migration: Migration) -> None:
    """Apply a migration on TimescaleDB: the jobs of the aggregates it drops stopped first, tried again
    while it meets a concurrent refresh."""
    def apply() -> None:
        _stop_aggregate_jobs(conn, DROPS_AGGREGATES.get(migration.version, ()))
        _apply(conn, migration)
    _retrying_concurrent_refresh(apply, step=f"migration {migration.version}")


def _retrying_concurrent_refresh(action: Callable[[], None], *, step: str) -> None:
    """Run ``action`` (one transaction of catalog changes), again while it meets TimescaleDB's own jobs."""
    for attempt, delay in enumerate(backoff(initial_s=0.1, max_s=2.0), start=1):
        try:
            action()
            return
        except psycopg.Error as exc:
            if not met_a_concurrent_refresh(exc) or attempt == ATTEMPTS:
                raise
            log.warning("a catalog change met a concurrent refresh of the continuous aggregates; trying again",
                        extra={"step": step, "attempt": attempt, "error": str(exc).strip()[:300]})
            time.sleep(delay)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    variant: str | None
    sql: str


def available_migrations() -> list[Migration]:
    """Every migration file shipped in this package, in order."""
    found = []
    for entry in resources.files("safewatch.schema").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], match[3], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: (m.version, m.variant or ""))


def _detect_storage(conn: psycopg.Connection) -> str:
    """'timescale' when the extension can be created here, else 'plain'."""
    if conn.execute(TIMESCALE_AVAILABLE).fetchone() is None:
        return "plain"
    # Installed but not preloaded: CREATE EXTENSION would end the session with a FATAL error.
    preloaded = conn.execute("SHOW shared_preload_libraries").fetchone()
    if preloaded is None or "timescaledb" not in preloaded[0]:
        log.warning("TimescaleDB is installed but not in shared_preload_libraries; using plain PostgreSQL "
                    "(add it there and restart PostgreSQL before the first migration to use it)")
        return "plain"
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:  # e.g. installed but not in shared_preload_libraries
        log.warning("TimescaleDB is installed but cannot be created; using plain PostgreSQL",
                    extra={"error": str(exc).strip()})
        return "plain"
    return "timescale"


def _fill_continuous_aggregates(conn: psycopg.Connection) -> None:
    """Materialise the rollups of readings a database held before its continuous aggregates existed.

    They are made empty (a refresh cannot run inside the migration's transaction), and their policies
    only reach 8 days back: without this, an upgraded database's older rollups would be missing. A
    policy's own first refresh may hold an aggregate for a moment: wait for it and try again.
    """
    if not one_row(conn.execute(HOLDS_OLDER_READINGS))[0]:
        return
    for table in READING_TABLES:
        for aggregate in (table.minute, table.hour):  # minutes first: the hours are made from them
            for attempt, delay in enumerate(backoff(initial_s=0.2, max_s=5.0)):
                try:
                    conn.execute(REFRESH_AGGREGATE, (aggregate,))
                    break
                except psycopg.errors.LockNotAvailable:
                    if attempt == 20:
                        raise
                    time.sleep(delay)
    log.info("filled the continuous aggregates with the readings older than their policies reach")


def migrate(url: str, *, storage: str | None = None, upto: int | None = None) -> str:
    """Bring the database at ``url`` up to date; return the storage in use.

    ``storage`` forces 'plain' or 'timescale' on a new database (tests run both); by default it is
    detected. A database keeps the storage it was first migrated with: asking an existing database for
    the other storage raises `StorageMismatch`, whose message says what to do. ``upto`` stops after that
    version (to upgrade a database step by step, or to test an upgrade from data of an older schema).
    Every full run then gives the process roles their grants again (safewatch/schema/roles.py), so a table
    made by a migration is covered as soon as it exists.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(CREATE_BOOKKEEPING)
            row = conn.execute(SELECT_STORAGE).fetchone()
            if row and storage and (advice := storage_mismatch_advice(have=row[0], asked=storage)):
                raise StorageMismatch(advice)
            storage = row[0] if row else (storage or _detect_storage(conn))
            if storage == "timescale":
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            conn.execute(RECORD_STORAGE, (storage,))
            applied = {r[0] for r in conn.execute(SELECT_APPLIED)}
            newly: set[int] = set()
            for migration in available_migrations():
                if migration.version in applied or migration.variant not in (None, storage):
                    continue
                if upto is not None and migration.version > upto:
                    break
                if storage == "timescale":
                    _apply_on_timescale(conn, migration)
                else:
                    _apply(conn, migration)
                applied.add(migration.version)
                newly.add(migration.version)
                log.info("applied migration", extra={"version": migration.version, "migration": migration.name,
                                                     "variant": migration.variant})
            if storage == "timescale" and WIDE_ROLLUPS in newly:
                _fill_continuous_aggregates(conn)
            with conn.transaction():
                for spec in METRICS:
                    conn.execute(UPSERT_METRIC, (spec.id, spec.key, spec.unit, str(spec.category)))
            if upto is None:  # the grants name tables of the latest schema: only once it is all there
                try:
                    if storage == "timescale":  # GRANT rewrites catalog rows TimescaleDB's jobs touch too
                        _retrying_concurrent_refresh(lambda: apply_grants(conn), step="grants")
                    else:
                        apply_grants(conn)
                except RolesUnavailable as exc:  # a developer's own PostgreSQL: the processes run as the owner
                    log.warning("process roles not granted; every process must connect as the owner: %s", exc)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return storage
