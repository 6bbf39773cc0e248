"""PostgreSQL connections: one place that opens them, and knows which storage the schema chose."""

from __future__ import annotations

import logging
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

SELECT_STORAGE = "SELECT value FROM safewatch_meta WHERE key = 'storage'"

R = TypeVar("R")


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """One connection (for workers that hold theirs, and for scripts)."""
    return psycopg.connect(url, autocommit=autocommit, application_name="safewatch")


def open_pool(url: str, *, min_size: int = 1, max_size: int = 8, dict_rows: bool = True) -> ConnectionPool:
    """A connection pool; rows come back as dicts for the API."""
    kwargs = {"row_factory": dict_row, "application_name": "safewatch"} if dict_rows else {}
    pool = ConnectionPool(url, min_size=min_size, max_size=max_size, kwargs=kwargs, open=False)
    pool.open(wait=True, timeout=30)
    return pool


def storage_of(conn: psycopg.Connection) -> str:
    """'timescale' or 'plain': what the migration chose for this database."""
    row = conn.execute(SELECT_STORAGE).fetchone()
    if row is None:
        raise RuntimeError("the database is not migrated; run `safewatch migrate`")
    return row["value"] if isinstance(row, dict) else row[0]


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def ensure_database(url: str) -> bool:
    """Create the URL's database if the server lacks it; True when it was created."""
    name = database_name(url)
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
        log.info("created database", extra={"database": name})
        return True


def one_row(cursor: psycopg.Cursor[R]) -> R:
    """The row of a statement that always returns one (an aggregate, a SHOW, an INSERT … RETURNING)."""
    row = cursor.fetchone()
    if row is None:
        raise LookupError("a statement that returns one row returned none; check the SQL beside this call")
    return row
