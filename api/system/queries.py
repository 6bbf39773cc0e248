"""SQL of the system alerts (schema 041): read-only here; the ingest's housekeeping writes them."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow

SELECT_SYSTEM_ALERTS = """
SELECT id, source, key, severity, message, details, opened_at, last_seen_at, cleared_at FROM system_alerts
WHERE %(all)s OR cleared_at IS NULL
ORDER BY cleared_at IS NULL DESC, opened_at DESC, id DESC
LIMIT %(limit)s
"""


def system_alerts(conn: psycopg.Connection[DictRow], *, include_cleared: bool, limit: int) -> list[dict[str, Any]]:
    """Open system alerts first (newest first), then, if asked, the cleared ones."""
    return conn.execute(SELECT_SYSTEM_ALERTS, {"all": include_cleared, "limit": limit}).fetchall()

