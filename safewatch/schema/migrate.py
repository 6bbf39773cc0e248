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
    detected. A database keeps the storage it was first migrated with. ``upto`` stops after that
    version (to upgrade a database step by step, or to test an upgrade from data of an older schema).
    Every full run then gives the process roles their grants again (safewatch/schema/roles.py), so a table
    made by a migration is covered as soon as it exists.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(CREATE_BOOKKEEPING)
            row = conn.execute(SELECT_STORAGE).fetchone()
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
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(RECORD_MIGRATION, (migration.version, migration.name, migration.variant))
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
                    apply_grants(conn)
                except RolesUnavailable as exc:  # a developer's own PostgreSQL: the processes run as the owner
                    log.warning("process roles not granted; every process must connect as the owner: %s", exc)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return storage
