"""Each process's own database login, with the signature of `safewatch.schema.roles.provision_login_roles`.

This one gives every login PostgreSQL's predefined ``pg_read_all_data`` and ``pg_write_all_data``: no DDL, no
superuser, but not yet the per-process grants of issue 22 point 3, which `safewatch.schema.roles` provides.
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg
from psycopg import sql

SELECT_ROLE = "SELECT 1 FROM pg_roles WHERE rolname = %s"


def login_role(process: str) -> str:
    """The PostgreSQL login of ``process`` (ingest, alerts, notifier, api, grafana)."""
    return f"safewatch_{process}_login"


def provision_login_roles(conn: psycopg.Connection, passwords: Mapping[str, str]) -> None:
    """Create or update each process's login with its password (idempotent: a re-run sets the same ones)."""
    with conn.transaction():
        for process, password in passwords.items():
            role = sql.Identifier(login_role(process))
            verb = "ALTER" if conn.execute(SELECT_ROLE, (login_role(process),)).fetchone() else "CREATE"
            conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(password)))
            grants = "pg_read_all_data" if process == "grafana" else "pg_read_all_data, pg_write_all_data"
            conn.execute(sql.SQL("GRANT " + grants + " TO {}").format(role))
