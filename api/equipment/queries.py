"""SQL of the equipment domain. Every query is limited to the caller's jurisdiction (``IN_SCOPE``)."""

from __future__ import annotations

import base64
import binascii
from datetime import date, datetime
from typing import Any

import orjson
import psycopg
from psycopg.rows import DictRow

from api.deps import IN_SCOPE
from api.pagination import BadCursor
from safewatch.registry.records import DivisionRef, References

_COLUMNS = """
e.id, e.code, e.category, e.variety, e.registration_no, u.uscc AS unit_uscc, u.name AS unit_name, e.banner_code,
d.league_code, e.lat, e.lon, e.address, e.manufacturer, e.model, e.manufactured_on, e.commissioned_on, e.rated,
e.status, e.last_inspection_on, e.next_inspection_on, e.gateway_id, e.rescue_code,
(gs.state = 'online') AS online, e.updated_at, e.retired_at
"""
_FROM = """
FROM equipment e
JOIN divisions d ON d.code = e.banner_code
LEFT JOIN units u ON u.id = e.unit_id
LEFT JOIN gateway_status gs ON gs.gateway_id = e.gateway_id
"""
_FILTERS = """
  AND (%(division)s::text IS NULL OR d.code = %(division)s OR d.league_code = %(division)s
       OR d.region_code = %(division)s)
  AND (%(category)s::text IS NULL OR e.category = %(category)s)
  AND (%(variety)s::text IS NULL OR e.variety = %(variety)s)
  AND (%(status)s::text IS NULL OR e.status = %(status)s)
  AND (%(unit)s::text IS NULL OR u.uscc = %(unit)s)
  AND (%(gateway)s::text IS NULL OR e.gateway_id = %(gateway)s)
  AND (%(due_before)s::date IS NULL OR e.next_inspection_on < %(due_before)s)
  AND (%(online)s::boolean IS NULL OR coalesce(gs.state = 'online', false) = %(online)s)
"""

# Keyset pagination per sort: (expression, SQL type of the cursor value). Nulls sort as 'infinity' so
# the key is total and a page boundary never skips or repeats a row.
SORTS: dict[str, tuple[str, str]] = {
    "id": ("e.id", "integer"),
    "code": ("e.code", "text"),
    "next_inspection_on": ("coalesce(e.next_inspection_on, 'infinity'::date)", "date"),
    "updated_at": ("e.updated_at", "timestamptz"),
}


def _page_query(sort: str, descending: bool) -> str:
    expr, sql_type = SORTS[sort]
    op, order = ("<", "DESC") if descending else (">", "ASC")
    return f"""
SELECT {_COLUMNS} {_FROM}
WHERE {IN_SCOPE} {_FILTERS}
  AND (%(after_key)s::{sql_type} IS NULL OR ({expr}, e.id) {op} (%(after_key)s::{sql_type}, %(after_id)s::integer))
ORDER BY {expr} {order}, e.id {order}
LIMIT %(limit)s
"""


SELECT_EQUIPMENT_PAGE: dict[tuple[str, bool], str] = {(s, d): _page_query(s, d) for s in SORTS for d in (False, True)}
SELECT_EQUIPMENT_BY_CODE = f"SELECT {_COLUMNS} {_FROM} WHERE {IN_SCOPE} AND e.code = %(code)s"

# Three index-served branches (code prefix, registration prefix, unit name by trigram), each limited
# to the jurisdiction before its LIMIT so a banner's search is never crowded out by other banners' rows.
SEARCH_EQUIPMENT = f"""
WITH hits AS (
    (SELECT e.id, 1 AS rank FROM equipment e JOIN divisions d ON d.code = e.banner_code
     WHERE {IN_SCOPE} AND e.code LIKE %(prefix)s ORDER BY e.code LIMIT %(limit)s)
    UNION ALL
    (SELECT e.id, 2 FROM equipment e JOIN divisions d ON d.code = e.banner_code
     WHERE {IN_SCOPE} AND e.registration_no LIKE %(prefix)s ORDER BY e.registration_no LIMIT %(limit)s)
    UNION ALL
    (SELECT e.id, 3 FROM units u JOIN equipment e ON e.unit_id = u.id JOIN divisions d ON d.code = e.banner_code
     WHERE {IN_SCOPE} AND u.name ILIKE %(contains)s ORDER BY e.code LIMIT %(limit)s)
), best AS (SELECT id, min(rank) AS rank FROM hits GROUP BY id)
SELECT {_COLUMNS} FROM best JOIN equipment e ON e.id = best.id
JOIN divisions d ON d.code = e.banner_code
LEFT JOIN units u ON u.id = e.unit_id
LEFT JOIN gateway_status gs ON gs.gateway_id = e.gateway_id
ORDER BY best.rank, e.code
LIMIT %(limit)s
"""

# Counts for a division and every division under it, each rolled up over its banners; only the banners
# asked about are aggregated, so a banner's dashboard does not scan the region.
SELECT_SUMMARY = f"""
WITH wanted AS (
    SELECT d.code, d.name, d.level, d.parent_code FROM divisions d
    WHERE {IN_SCOPE} AND (d.code = %(division)s OR d.league_code = %(division)s OR d.region_code = %(division)s)
), per_banner AS (
    SELECT e.banner_code, count(*) AS total,
           count(*) FILTER (WHERE e.status = 'in_use') AS in_use,
           count(*) FILTER (WHERE e.status = 'suspended') AS suspended,
           count(*) FILTER (WHERE e.status = 'scrapped') AS scrapped,
           count(*) FILTER (WHERE e.status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE e.category = '1000') AS boilers,
           count(*) FILTER (WHERE e.category = '2000') AS pressure_vessels,
           count(*) FILTER (WHERE e.category = '3000') AS elevators,
           count(*) FILTER (WHERE gs.state = 'online') AS online,
           count(*) FILTER (WHERE e.gateway_id IS NOT NULL AND gs.state IS DISTINCT FROM 'online') AS offline,
           count(*) FILTER (WHERE e.gateway_id IS NULL) AS unbound,
           count(*) FILTER (WHERE e.status = 'in_use' AND e.next_inspection_on < %(today)s) AS inspection_overdue,
           count(*) FILTER (WHERE e.status = 'in_use' AND e.next_inspection_on >= %(today)s
                            AND e.next_inspection_on < %(today)s + 30) AS inspection_due_30d
    FROM equipment e LEFT JOIN gateway_status gs ON gs.gateway_id = e.gateway_id
    WHERE e.banner_code IN (SELECT code FROM wanted)
    GROUP BY e.banner_code
)
SELECT w.code, w.name, w.level, w.parent_code,
       coalesce(sum(p.total), 0)::int AS total, coalesce(sum(p.in_use), 0)::int AS in_use,
       coalesce(sum(p.suspended), 0)::int AS suspended, coalesce(sum(p.scrapped), 0)::int AS scrapped,
       coalesce(sum(p.cancelled), 0)::int AS cancelled, coalesce(sum(p.boilers), 0)::int AS boilers,
       coalesce(sum(p.pressure_vessels), 0)::int AS pressure_vessels, coalesce(sum(p.elevators), 0)::int AS elevators,
       coalesce(sum(p.online), 0)::int AS online, coalesce(sum(p.offline), 0)::int AS offline,
       coalesce(sum(p.unbound), 0)::int AS unbound, coalesce(sum(p.inspection_overdue), 0)::int AS inspection_overdue,
       coalesce(sum(p.inspection_due_30d), 0)::int AS inspection_due_30d
FROM wanted w
JOIN divisions b ON b.code = w.code OR b.league_code = w.code OR b.region_code = w.code
LEFT JOIN per_banner p ON p.banner_code = b.code
GROUP BY w.code, w.name, w.level, w.parent_code
ORDER BY w.code
"""

SELECT_FOR_UPDATE = f"""
SELECT e.id, e.code, e.category, e.variety, e.registration_no, u.uscc AS unit_uscc, e.banner_code, e.lat, e.lon,
       e.address, e.manufacturer, e.model, e.manufactured_on, e.commissioned_on, e.rated, e.status,
       e.last_inspection_on, e.next_inspection_on, e.gateway_id, e.rescue_code
FROM equipment e JOIN divisions d ON d.code = e.banner_code LEFT JOIN units u ON u.id = e.unit_id
WHERE {IN_SCOPE} AND e.code = %(code)s
FOR UPDATE OF e
"""
INSERT_EQUIPMENT = """
INSERT INTO equipment (code, category, variety, registration_no, unit_id, banner_code, lat, lon, address,
    manufacturer, model, manufactured_on, commissioned_on, rated, status, last_inspection_on, next_inspection_on,
    gateway_id, rescue_code)
SELECT %(code)s, %(category)s, %(variety)s, %(registration_no)s, u.id, %(banner_code)s, %(lat)s, %(lon)s,
    %(address)s, %(manufacturer)s, %(model)s, %(manufactured_on)s, %(commissioned_on)s, %(rated)s, %(status)s,
    %(last_inspection_on)s, %(next_inspection_on)s, %(gateway_id)s, %(rescue_code)s
FROM units u WHERE u.uscc = %(unit_uscc)s
RETURNING id
"""
UPDATE_EQUIPMENT = """
UPDATE equipment SET category = %(category)s, variety = %(variety)s, registration_no = %(registration_no)s,
    unit_id = (SELECT id FROM units WHERE uscc = %(unit_uscc)s), banner_code = %(banner_code)s, lat = %(lat)s,
    lon = %(lon)s, address = %(address)s, manufacturer = %(manufacturer)s, model = %(model)s,
    manufactured_on = %(manufactured_on)s, commissioned_on = %(commissioned_on)s, rated = %(rated)s,
    status = %(status)s, last_inspection_on = %(last_inspection_on)s, next_inspection_on = %(next_inspection_on)s,
    gateway_id = %(gateway_id)s, rescue_code = %(rescue_code)s, updated_at = now()
WHERE id = %(id)s
"""
RETIRE_EQUIPMENT = "UPDATE equipment SET status = %(status)s, retired_at = now(), updated_at = now() WHERE id = %(id)s"
INSERT_AUDIT = "INSERT INTO equipment_audit (equipment_id, actor, action, changes) VALUES (%s, %s, %s, %s)"
SELECT_AUDIT = """
SELECT a.at, a.actor, a.action, a.changes FROM equipment_audit a WHERE a.equipment_id = %s ORDER BY a.id
"""

# What one record is checked against (`safewatch.registry.records.reference_problems`).
SELECT_DIVISION = "SELECT code, level, league_code, region_code FROM divisions WHERE code = %s"
SELECT_UNIT_RETIRED = "SELECT retired_at IS NOT NULL AS retired FROM units WHERE uscc = %s"
SELECT_GATEWAY_LEAGUE = "SELECT league_code FROM gateways WHERE id = %s AND retired_at IS NULL"
SELECT_CODE_TAKEN = "SELECT 1 FROM equipment WHERE code = %s"


def references_for(conn: psycopg.Connection[DictRow], *, scope: str, banner_code: str, unit_uscc: str,
                   gateway_id: str | None, code: str) -> References:
    """The slice of the registry one record is checked against."""
    division = conn.execute(SELECT_DIVISION, (banner_code,)).fetchone()
    divisions = {}
    in_scope_codes: set[str] = set()
    if division is not None:
        divisions[banner_code] = DivisionRef(division["level"], division["league_code"])
        in_scope_codes = {division["code"], division["league_code"], division["region_code"]} - {None}
    unit = conn.execute(SELECT_UNIT_RETIRED, (unit_uscc,)).fetchone()
    gateway = conn.execute(SELECT_GATEWAY_LEAGUE, (gateway_id,)).fetchone() if gateway_id else None
    taken = conn.execute(SELECT_CODE_TAKEN, (code,)).fetchone() is not None
    return References(
        divisions=divisions, in_scope=lambda _code: scope in in_scope_codes,
        units={unit_uscc: unit["retired"]} if unit else {},
        gateways={gateway_id: gateway["league_code"]} if gateway and gateway_id else {},
        codes_taken={code} if taken else set())


def list_equipment(conn: psycopg.Connection[DictRow], *, sort: str, descending: bool,
                   **params: Any) -> list[dict[str, Any]]:
    return conn.execute(SELECT_EQUIPMENT_PAGE[(sort, descending)], params).fetchall()


def get_equipment(conn: psycopg.Connection[DictRow], *, scope: str, code: str) -> dict[str, Any] | None:
    return conn.execute(SELECT_EQUIPMENT_BY_CODE, {"scope": scope, "code": code}).fetchone()


def search_equipment(conn: psycopg.Connection[DictRow], *, scope: str, q: str, limit: int) -> list[dict[str, Any]]:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return conn.execute(SEARCH_EQUIPMENT, {"scope": scope, "prefix": escaped.upper() + "%",
                                           "contains": "%" + escaped + "%", "limit": limit}).fetchall()


def summary(conn: psycopg.Connection[DictRow], *, scope: str, division: str, today: date) -> list[dict[str, Any]]:
    return conn.execute(SELECT_SUMMARY, {"scope": scope, "division": division, "today": today}).fetchall()


def audit_of(conn: psycopg.Connection[DictRow], equipment_id: int) -> list[dict[str, Any]]:
    return conn.execute(SELECT_AUDIT, (equipment_id,)).fetchall()


# --- cursors: (sort, key, id) so a page boundary is exact under any sort ---

def encode_cursor(sort: str, key: Any, row_id: int) -> str:
    if isinstance(key, date | datetime):
        key = key.isoformat()
    raw = orjson.dumps([sort, key, row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, sort: str) -> tuple[Any, int | None]:
    """(key, id) of the last row seen, or (None, None) on the first page; the key is checked by sort."""
    if not cursor:
        return None, None
    try:
        got_sort, key, row_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if got_sort != sort or not isinstance(row_id, int) or isinstance(row_id, bool) or abs(row_id) >= 2**31:
            raise ValueError
        key = _CURSOR_KEYS[sort](key)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise BadCursor("cursor is not one this listing returned for this sort; start again without it",
                        ["query", "cursor"]) from None
    return key, row_id


def _int_key(key: Any) -> int:
    if not isinstance(key, int) or isinstance(key, bool) or abs(key) >= 2**31:
        raise ValueError
    return key


def _str_key(key: Any) -> str:
    if not isinstance(key, str):
        raise ValueError
    return key


def _date_key(key: Any) -> str:
    return key if key == "infinity" else date.fromisoformat(_str_key(key)).isoformat()


def _time_key(key: Any) -> datetime:
    return datetime.fromisoformat(_str_key(key))


_CURSOR_KEYS = {"id": _int_key, "code": _str_key, "next_inspection_on": _date_key, "updated_at": _time_key}


def cursor_key(row: dict[str, Any], sort: str) -> Any:
    if sort == "next_inspection_on":
        return row["next_inspection_on"].isoformat() if row["next_inspection_on"] else "infinity"
    return row[sort]
