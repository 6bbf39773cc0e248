"""SQL of the alerts domain."""

from __future__ import annotations

from typing import Any

import psycopg

from api.deps import IN_SCOPE

_COLUMNS = """
a.id, e.code AS equipment_code, e.category, a.rule_key, a.severity, a.state, a.active, a.latched, a.level,
a.division_code, a.league_code, a.metric, a.value, a.limit_value, a.message, a.opened_at, a.updated_at,
a.cleared_at, a.closed_at
"""
_FROM = "FROM alerts a JOIN equipment e ON e.id = a.equipment_id JOIN divisions d ON d.code = a.division_code"
SELECT_ALERT_PAGE = f"""
SELECT {_COLUMNS} {_FROM}
WHERE {IN_SCOPE}
  AND (%(division)s::text IS NULL OR d.code = %(division)s OR d.league_code = %(division)s
       OR d.region_code = %(division)s)
  AND (%(severity)s::text IS NULL OR a.severity = %(severity)s)
  AND (%(state)s::text IS NULL OR a.state = %(state)s)
  AND (%(open)s::boolean IS NULL OR (a.closed_at IS NULL) = %(open)s)
  AND (%(equipment)s::text IS NULL OR e.code = %(equipment)s)
  AND (%(before)s::bigint IS NULL OR a.id < %(before)s)
ORDER BY a.id DESC
LIMIT %(limit)s
"""
SELECT_ALERT = f"SELECT {_COLUMNS} {_FROM} WHERE {IN_SCOPE} AND a.id = %(id)s"
SELECT_ALERT_FOR_UPDATE = f"""
SELECT a.id, a.state, a.active, a.latched FROM alerts a JOIN divisions d ON d.code = a.division_code
WHERE {IN_SCOPE} AND a.id = %(id)s FOR UPDATE OF a
"""
SELECT_TRANSITIONS = "SELECT at, from_state, to_state, actor, reason FROM alert_transitions WHERE alert_id = %s ORDER BY id"
UPDATE_ALERT_STATE = """
UPDATE alerts SET state = %(state)s, active = %(active)s, latched = %(latched)s,
    closed_at = CASE WHEN %(state)s = 'normal' THEN clock_timestamp() END
WHERE id = %(id)s
"""
INSERT_TRANSITION = """
INSERT INTO alert_transitions (alert_id, from_state, to_state, actor, reason) VALUES (%s, %s, %s, %s, %s)
"""


def list_alerts(conn: psycopg.Connection, **params: Any) -> list[dict[str, Any]]:
    return conn.execute(SELECT_ALERT_PAGE, params).fetchall()


def get_alert(conn: psycopg.Connection, *, scope: str, alert_id: int) -> dict[str, Any] | None:
    return conn.execute(SELECT_ALERT, {"scope": scope, "id": alert_id}).fetchone()


def transitions_of(conn: psycopg.Connection, alert_id: int) -> list[dict[str, Any]]:
    return conn.execute(SELECT_TRANSITIONS, (alert_id,)).fetchall()
