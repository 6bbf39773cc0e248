"""SQL of the system alerts (schema 041): read-only here; the ingest's housekeeping writes them."""

from __future__ import annotations

from typing import Any

import psycopg

SELECT_SYSTEM_ALERTS = """
SELECT id, source, key, severity, message, details, opened_at, last_seen_at, cleared_at FROM system_alerts
WHERE %(all)s OR cleared_at IS NULL
ORDER BY cleared_at IS NULL DESC, opened_at DESC, id DESC
LIMIT %(limit)s
"""
SELECT_DIVISION_LEVEL = "SELECT level FROM divisions WHERE code = %s"


def system_alerts(conn: psycopg.Connection, *, include_cleared: bool, limit: int) -> list[dict[str, Any]]:
    """Open system alerts first (newest first), then, if asked, the cleared ones."""
    return conn.execute(SELECT_SYSTEM_ALERTS, {"all": include_cleared, "limit": limit}).fetchall()  # type: ignore[return-value]


def division_level(conn: psycopg.Connection, code: str) -> str | None:
    row = conn.execute(SELECT_DIVISION_LEVEL, (code,)).fetchone()
    return None if row is None else row["level"]  # type: ignore[call-overload]
