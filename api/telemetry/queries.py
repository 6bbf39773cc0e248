"""SQL of the telemetry domain: the same queries on TimescaleDB and plain PostgreSQL.

readings_1m / readings_1h are continuous aggregates on TimescaleDB and service-maintained tables
on plain PostgreSQL, with the same columns (schema 010).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import DictRow

from api.deps import IN_SCOPE
from api.telemetry.resolution import Resolution

SELECT_EQUIPMENT_IN_SCOPE = f"""
SELECT e.id, e.code, e.category FROM equipment e JOIN divisions d ON d.code = e.banner_code
WHERE e.code = %(code)s AND {IN_SCOPE}
"""
SELECT_RAW_SERIES = """
SELECT m.key AS metric, m.unit, r.time AS t, r.value AS avg, r.value AS min, r.value AS max
FROM readings r JOIN metrics m ON m.id = r.metric_id
WHERE r.equipment_id = %(equipment_id)s AND r.time >= %(start)s AND r.time < %(end)s
  AND (%(metrics)s::text[] IS NULL OR m.key = ANY(%(metrics)s))
ORDER BY m.key, r.time
"""
# The rollup table's name is one of Resolution's values, never user input.
SELECT_ROLLUP_SERIES = """
SELECT m.key AS metric, m.unit, r.bucket AS t, r.avg, r.min, r.max
FROM {table} r JOIN metrics m ON m.id = r.metric_id
WHERE r.equipment_id = %(equipment_id)s AND r.bucket >= %(start)s AND r.bucket < %(end)s
  AND (%(metrics)s::text[] IS NULL OR m.key = ANY(%(metrics)s))
ORDER BY m.key, r.bucket
"""


def get_equipment(conn: psycopg.Connection[DictRow], *, scope: str, code: str) -> dict[str, Any] | None:
    return conn.execute(SELECT_EQUIPMENT_IN_SCOPE, {"scope": scope, "code": code}).fetchone()


def series_rows(conn: psycopg.Connection[DictRow], *, resolution: Resolution, equipment_id: int, start: datetime,
                end: datetime, metrics: list[str] | None) -> list[dict[str, Any]]:
    params = {"equipment_id": equipment_id, "start": start, "end": end, "metrics": metrics}
    if resolution is Resolution.RAW:
        return conn.execute(SELECT_RAW_SERIES, params).fetchall()
    query = sql.SQL(SELECT_ROLLUP_SERIES).format(table=sql.Identifier(resolution.value))
    return conn.execute(query, params).fetchall()
