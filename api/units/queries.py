"""SQL of the user-unit domain, limited to the caller's jurisdiction (``IN_SCOPE`` over the unit's division)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow

from api.deps import IN_SCOPE

_COLUMNS = """
u.id, u.uscc, u.name, u.division_code, u.address, u.safety_manager, u.phone, u.created_at, u.updated_at, u.retired_at,
(SELECT count(*) FROM equipment e WHERE e.unit_id = u.id)::int AS equipment
"""
SELECT_UNIT_PAGE = f"""
SELECT {_COLUMNS} FROM units u JOIN divisions d ON d.code = u.division_code
WHERE {IN_SCOPE}
  AND (%(division)s::text IS NULL OR d.code = %(division)s OR d.league_code = %(division)s
       OR d.region_code = %(division)s)
  AND (%(q)s::text IS NULL OR u.name ILIKE %(q)s OR u.uscc LIKE upper(%(prefix)s))
  AND (%(include_retired)s OR u.retired_at IS NULL)
  AND (%(after)s::bigint IS NULL OR u.id > %(after)s)
ORDER BY u.id
LIMIT %(limit)s
"""
SELECT_UNIT = f"""
SELECT {_COLUMNS} FROM units u JOIN divisions d ON d.code = u.division_code WHERE {IN_SCOPE} AND u.uscc = %(uscc)s
"""
SELECT_UNIT_FOR_UPDATE = f"""
SELECT u.id, u.uscc, u.name, u.division_code, u.address, u.safety_manager, u.phone, u.retired_at
FROM units u JOIN divisions d ON d.code = u.division_code WHERE {IN_SCOPE} AND u.uscc = %(uscc)s FOR UPDATE OF u
"""
INSERT_UNIT = """
INSERT INTO units (uscc, name, division_code, address, safety_manager, phone)
VALUES (%(uscc)s, %(name)s, %(division_code)s, %(address)s, %(safety_manager)s, %(phone)s)
"""
UPDATE_UNIT = """
UPDATE units SET name = %(name)s, division_code = %(division_code)s, address = %(address)s,
    safety_manager = %(safety_manager)s, phone = %(phone)s, updated_at = now()
WHERE id = %(id)s
"""
RETIRE_UNIT = "UPDATE units SET retired_at = now(), updated_at = now() WHERE id = %s"
COUNT_LIVE_EQUIPMENT = "SELECT count(*) AS n FROM equipment WHERE unit_id = %s AND status IN ('in_use', 'suspended')"
SELECT_DIVISION_SCOPE = f"SELECT d.code, ({IN_SCOPE}) AS in_scope FROM divisions d WHERE d.code = %(code)s"


def list_units(conn: psycopg.Connection[DictRow], **params: Any) -> list[dict[str, Any]]:
    return conn.execute(SELECT_UNIT_PAGE, params).fetchall()


def get_unit(conn: psycopg.Connection[DictRow], *, scope: str, uscc: str) -> dict[str, Any] | None:
    return conn.execute(SELECT_UNIT, {"scope": scope, "uscc": uscc}).fetchone()


def division_scope(conn: psycopg.Connection[DictRow], *, scope: str, code: str) -> bool | None:
    """True/False: the division exists and is / is not within ``scope``; None: no such division."""
    row = conn.execute(SELECT_DIVISION_SCOPE, {"scope": scope, "code": code}).fetchone()
    return None if row is None else bool(row["in_scope"])
