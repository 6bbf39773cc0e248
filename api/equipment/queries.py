"""SQL of the equipment domain."""

from __future__ import annotations

from typing import Any

import psycopg

from api.deps import IN_SCOPE

_COLUMNS = """
e.id, e.code, e.category, e.variety, e.registration_no, u.name AS unit_name, e.banner_code, d.league_code,
e.lat, e.lon, e.address, e.rated, e.status, e.last_inspection_on, e.next_inspection_on, e.gateway_id,
(gs.state = 'online') AS online
"""
_FROM = """
FROM equipment e
JOIN divisions d ON d.code = e.banner_code
LEFT JOIN units u ON u.id = e.unit_id
LEFT JOIN gateway_status gs ON gs.gateway_id = e.gateway_id
"""
SELECT_EQUIPMENT_PAGE = f"""
SELECT {_COLUMNS} {_FROM}
WHERE {IN_SCOPE}
  AND (%(division)s::text IS NULL OR d.code = %(division)s OR d.league_code = %(division)s
       OR d.region_code = %(division)s)
  AND (%(category)s::text IS NULL OR e.category = %(category)s)
  AND (%(status)s::text IS NULL OR e.status = %(status)s)
  AND (%(after)s::int IS NULL OR e.id > %(after)s)
ORDER BY e.id
LIMIT %(limit)s
"""
SELECT_EQUIPMENT_BY_CODE = f"SELECT {_COLUMNS} {_FROM} WHERE {IN_SCOPE} AND e.code = %(code)s"


def list_equipment(conn: psycopg.Connection, *, scope: str, division: str | None, category: str | None,
                   status: str | None, after: int | None, limit: int) -> list[dict[str, Any]]:
    return conn.execute(SELECT_EQUIPMENT_PAGE, {"scope": scope, "division": division, "category": category,
                                                "status": status, "after": after, "limit": limit}).fetchall()


def get_equipment(conn: psycopg.Connection, *, scope: str, code: str) -> dict[str, Any] | None:
    return conn.execute(SELECT_EQUIPMENT_BY_CODE, {"scope": scope, "code": code}).fetchone()
