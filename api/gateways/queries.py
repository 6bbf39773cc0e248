"""SQL of the gateway domain.

A gateway is registered with a league. Everyone whose jurisdiction covers that league sees it; a banner
sees the gateways that report equipment standing in the banner. Writes need the league in scope.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow

from api.deps import IN_SCOPE

_COLUMNS = """
g.id, g.league_code, g.name, g.created_at, g.updated_at, g.credentials_rotated_at, g.retired_at,
(g.password_hash IS NOT NULL) AS has_credentials,
(SELECT count(*) FROM equipment e WHERE e.gateway_id = g.id)::int AS equipment,
(gs.state = 'online') AS online, gs.since AS status_since
"""
_VISIBLE = f"""
(EXISTS (SELECT 1 FROM divisions d WHERE d.code = g.league_code AND {IN_SCOPE})
 OR EXISTS (SELECT 1 FROM equipment e JOIN divisions d ON d.code = e.banner_code
            WHERE e.gateway_id = g.id AND {IN_SCOPE}))
"""
SELECT_GATEWAY_PAGE = f"""
SELECT {_COLUMNS} FROM gateways g LEFT JOIN gateway_status gs ON gs.gateway_id = g.id
WHERE {_VISIBLE}
  AND (%(league)s::text IS NULL OR g.league_code = %(league)s)
  AND (%(online)s::boolean IS NULL OR coalesce(gs.state = 'online', false) = %(online)s)
  AND (%(include_retired)s OR g.retired_at IS NULL)
  AND (%(after)s::text IS NULL OR g.id > %(after)s)
ORDER BY g.id
LIMIT %(limit)s
"""
SELECT_GATEWAY = f"""
SELECT {_COLUMNS} FROM gateways g LEFT JOIN gateway_status gs ON gs.gateway_id = g.id
WHERE {_VISIBLE} AND g.id = %(id)s
"""
# Writes: the gateway's league must lie within the caller's jurisdiction.
SELECT_GATEWAY_FOR_UPDATE = f"""
SELECT g.id, g.league_code, g.name, g.retired_at FROM gateways g JOIN divisions d ON d.code = g.league_code
WHERE {IN_SCOPE} AND g.id = %(id)s FOR UPDATE OF g
"""
SELECT_LEAGUE = f"SELECT d.level, ({IN_SCOPE}) AS in_scope FROM divisions d WHERE d.code = %(code)s"
INSERT_GATEWAY = """
INSERT INTO gateways (id, league_code, name, password_hash, credentials_rotated_at)
VALUES (%(id)s, %(league_code)s, %(name)s, %(password_hash)s, now())
"""
UPDATE_GATEWAY = "UPDATE gateways SET name = %(name)s, updated_at = now() WHERE id = %(id)s"
ROTATE_CREDENTIALS = """
UPDATE gateways SET password_hash = %(password_hash)s, credentials_rotated_at = now(), updated_at = now()
WHERE id = %(id)s
"""
RETIRE_GATEWAY = "UPDATE gateways SET retired_at = now(), updated_at = now() WHERE id = %s"
COUNT_BOUND_LIVE = "SELECT count(*) AS n FROM equipment WHERE gateway_id = %s AND status IN ('in_use', 'suspended')"


def list_gateways(conn: psycopg.Connection[DictRow], **params: Any) -> list[dict[str, Any]]:
    return conn.execute(SELECT_GATEWAY_PAGE, params).fetchall()


def get_gateway(conn: psycopg.Connection[DictRow], *, scope: str, gateway_id: str) -> dict[str, Any] | None:
    return conn.execute(SELECT_GATEWAY, {"scope": scope, "id": gateway_id}).fetchone()
