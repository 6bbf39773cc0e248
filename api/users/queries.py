"""SQL of the people domain, limited to people bound inside the administrator's jurisdiction."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow

from api.deps import IN_SCOPE

_COLUMNS = "p.id, p.username, p.role, p.division_code, p.display_name, p.created_at, p.updated_at, p.retired_at"
SELECT_USER_PAGE = f"""
SELECT {_COLUMNS} FROM users p JOIN divisions d ON d.code = p.division_code
WHERE {IN_SCOPE}
  AND (%(role)s::text IS NULL OR p.role = %(role)s)
  AND (%(division)s::text IS NULL OR d.code = %(division)s OR d.league_code = %(division)s
       OR d.region_code = %(division)s)
  AND (%(include_retired)s OR p.retired_at IS NULL)
  AND (%(after)s::int IS NULL OR p.id > %(after)s)
ORDER BY p.id
LIMIT %(limit)s
"""
SELECT_USER = f"""
SELECT {_COLUMNS} FROM users p JOIN divisions d ON d.code = p.division_code
WHERE {IN_SCOPE} AND p.username = %(username)s
"""
SELECT_USER_FOR_UPDATE = f"""
SELECT {_COLUMNS} FROM users p JOIN divisions d ON d.code = p.division_code
WHERE {IN_SCOPE} AND p.username = %(username)s FOR UPDATE OF p
"""
SELECT_DIVISION = f"SELECT d.level, ({IN_SCOPE}) AS in_scope FROM divisions d WHERE d.code = %(code)s"
INSERT_USER = """
INSERT INTO users (username, password_hash, role, division_code, display_name)
VALUES (%(username)s, %(password_hash)s, %(role)s, %(division_code)s, %(display_name)s)
"""
UPDATE_USER = """
UPDATE users SET role = %(role)s, division_code = %(division_code)s, display_name = %(display_name)s,
    password_hash = coalesce(%(password_hash)s, password_hash), updated_at = now()
WHERE id = %(id)s
"""
# Taken first in every change of a person, in one order, so that two administrators demoting each other
# at once cannot both succeed (and cannot deadlock).
LOCK_ACTIVE_ADMINISTRATORS = """
SELECT id FROM users WHERE role = 'administrator' AND retired_at IS NULL ORDER BY id FOR UPDATE
"""
RETIRE_USER = "UPDATE users SET retired_at = now(), updated_at = now() WHERE id = %s"


def list_users(conn: psycopg.Connection[DictRow], **params: Any) -> list[dict[str, Any]]:
    return conn.execute(SELECT_USER_PAGE, params).fetchall()


def get_user(conn: psycopg.Connection[DictRow], *, scope: str, username: str) -> dict[str, Any] | None:
    return conn.execute(SELECT_USER, {"scope": scope, "username": username}).fetchone()
