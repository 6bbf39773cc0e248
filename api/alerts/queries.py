"""SQL of the alerts domain."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow

from alerts.engine.inspection import OVERDUE_KEY
from api.deps import IN_SCOPE
from api.divisions.arrival import ARRIVAL_DEADLINE_AT

_COLUMNS = f"""
a.id, e.code AS equipment_code, e.category, a.rule_key, a.kind, a.world, a.severity, a.state, a.active, a.latched,
a.level, a.division_code, a.league_code, a.metric, a.value, a.limit_value, a.message, a.opened_at, a.updated_at,
a.cleared_at, a.closed_at, a.shelved_until, a.shelved_by, a.assignee, a.suppressed_by, a.chattering, a.raise_count,
{ARRIVAL_DEADLINE_AT} AS arrival_deadline_at
"""
_FROM = "FROM alerts a JOIN equipment e ON e.id = a.equipment_id JOIN divisions d ON d.code = a.division_code"

# The feed's order (issue 25): most severe first, then unacknowledged before acknowledged, then newest.
# The expressions are those of the index alerts_open_priority_idx (migration 045).
SEVERITY_RANK = "array_position(ARRAY['critical', 'major', 'minor', 'warning'], a.severity)"
ACKNOWLEDGED = "(a.state NOT IN ('active_unack', 'returned_unack'))"
# Every filter but severity: the totals per severity are counted under these, so a feed filtered to
# warnings still says how many criticals there are.
_FILTERS = f"""{IN_SCOPE}
  AND (%(division)s::text IS NULL OR d.code = %(division)s OR d.league_code = %(division)s
       OR d.region_code = %(division)s)
  AND (%(state)s::text IS NULL OR a.state = %(state)s)
  AND (%(open)s::boolean IS NULL OR (a.closed_at IS NULL) = %(open)s)
  AND (%(equipment)s::text IS NULL OR a.equipment_id = (SELECT id FROM equipment WHERE code = %(equipment)s))
  AND (%(kind)s::text IS NULL OR a.kind = %(kind)s)
  AND (%(rule)s::text IS NULL OR a.rule_key = %(rule)s)
  AND (%(assignee)s::text IS NULL OR a.assignee = %(assignee)s)
  AND (%(world)s::text IS NULL OR a.world = %(world)s)"""
# A page is chosen from alerts and divisions alone (walking alerts_open_priority_idx), then joined with the
# registry for its rows only: with equipment in the choosing join the planner at times hashed the whole
# registry (200,000 rows: 230 ms instead of 2 ms, docs/decisions/alert-feed.md).
_PAGE = f"""
SELECT {_COLUMNS}, p.severity_rank, p.acknowledged
FROM (SELECT a.id, {SEVERITY_RANK} AS severity_rank, {ACKNOWLEDGED} AS acknowledged
      FROM alerts a JOIN divisions d ON d.code = a.division_code
      WHERE {_FILTERS} AND (%(severity)s::text IS NULL OR a.severity = %(severity)s) AND {{after}}
      ORDER BY {{order}} LIMIT %(limit)s) p
JOIN alerts a ON a.id = p.id JOIN equipment e ON e.id = a.equipment_id JOIN divisions d ON d.code = a.division_code
ORDER BY {{outer_order}}
"""
SELECT_ALERT_PAGE_BY_PRIORITY = _PAGE.format(
    after=f"""(%(after_rank)s::int IS NULL
       OR ({SEVERITY_RANK}, {ACKNOWLEDGED}) > (%(after_rank)s::int, %(after_acked)s::boolean)
       OR (({SEVERITY_RANK}, {ACKNOWLEDGED}) = (%(after_rank)s::int, %(after_acked)s::boolean)
           AND (a.opened_at, a.id) < (%(after_opened)s::timestamptz, %(after_id)s::bigint)))""",
    order=f"{SEVERITY_RANK}, {ACKNOWLEDGED}, a.opened_at DESC, a.id DESC",
    outer_order="p.severity_rank, p.acknowledged, a.opened_at DESC, a.id DESC")
SELECT_ALERT_PAGE_BY_TIME = _PAGE.format(
    after="""(%(after_opened)s::timestamptz IS NULL
       OR (a.opened_at, a.id) < (%(after_opened)s::timestamptz, %(after_id)s::bigint))""",
    order="a.opened_at DESC, a.id DESC", outer_order="a.opened_at DESC, a.id DESC")
# No join with equipment (the filters name it by a sub-select): counting thousands of open alerts must not
# scan the whole registry (200,000 rows: 124 ms with the join, docs/decisions/alert-feed.md).
SELECT_ALERT_TOTALS = f"""
SELECT a.severity, count(*) AS n, count(*) FILTER (WHERE NOT {ACKNOWLEDGED}) AS unacknowledged
FROM alerts a JOIN divisions d ON d.code = a.division_code
WHERE {_FILTERS}
GROUP BY a.severity
"""

# The supervision worklist: open supervision matters with the date each fell due, the longest overdue first.
# An overdue inspection fell due on next_inspection_on; a registration when it expired, or 30 days (TSG 08)
# after the equipment entered service (the rule registration.expired, alerts/engine/inspection.py).
DUE_ON = f"""(CASE WHEN a.rule_key = '{OVERDUE_KEY}' THEN e.next_inspection_on
    ELSE coalesce((to_jsonb(e) ->> 'registration_expires_on')::date, e.commissioned_on + 30) END)"""
_SUPERVISION_FILTERS = f"""{IN_SCOPE} AND a.world = 'supervision' AND a.closed_at IS NULL
  AND (%(division)s::text IS NULL OR d.code = %(division)s OR d.league_code = %(division)s
       OR d.region_code = %(division)s)
  AND (%(rule)s::text IS NULL OR a.rule_key = %(rule)s)"""
SELECT_SUPERVISION_PAGE = f"""
SELECT {_COLUMNS}, {DUE_ON} AS due_on, (now() AT TIME ZONE 'Asia/Shanghai')::date - {DUE_ON} AS days_overdue,
       e.address, u.name AS unit_name, u.phone AS unit_phone
{_FROM} LEFT JOIN units u ON u.id = e.unit_id
WHERE {_SUPERVISION_FILTERS}
  AND (%(after_due)s::date IS NULL
       OR (coalesce({DUE_ON}, 'infinity'::date), a.id) > (%(after_due)s::date, %(after_id)s::bigint))
ORDER BY coalesce({DUE_ON}, 'infinity'::date), a.id
LIMIT %(limit)s
"""
SELECT_SUPERVISION_BY_DIVISION = f"""
SELECT a.division_code, count(*) AS open, count(*) FILTER (WHERE NOT {ACKNOWLEDGED}) AS unacknowledged,
       min({DUE_ON}) AS oldest_due_on
{_FROM} WHERE {_SUPERVISION_FILTERS}
GROUP BY a.division_code ORDER BY a.division_code
"""
SELECT_ALERT = f"SELECT {_COLUMNS} {_FROM} WHERE {IN_SCOPE} AND a.id = %(id)s"
SELECT_ALERT_FOR_UPDATE = f"""
SELECT a.id, a.state, a.active, a.latched, a.severity FROM alerts a JOIN divisions d ON d.code = a.division_code
WHERE {IN_SCOPE} AND a.id = %(id)s FOR UPDATE OF a
"""
SELECT_TRANSITIONS = """
SELECT at, from_state, to_state, actor, reason FROM alert_transitions WHERE alert_id = %s ORDER BY id
"""
SELECT_NOTES = "SELECT at, author, kind, body AS text FROM alert_notes WHERE alert_id = %s ORDER BY id"
UPDATE_ALERT_STATE = """
UPDATE alerts SET state = %(state)s, active = %(active)s, latched = %(latched)s,
    shelved_until = CASE WHEN %(state)s = 'shelved' THEN %(shelved_until)s::timestamptz END,
    shelved_by = CASE WHEN %(state)s = 'shelved' THEN %(shelved_by)s::text END,
    closed_at = CASE WHEN %(state)s = 'normal' THEN clock_timestamp() END
WHERE id = %(id)s
"""
INSERT_TRANSITION = """
INSERT INTO alert_transitions (alert_id, from_state, to_state, actor, reason) VALUES (%s, %s, %s, %s, %s)
"""
NOTIFY_ALERT = "SELECT pg_notify('safewatch_alerts', %s)"
# An assignee must be a person who can see the alert: their jurisdiction contains its division.
SELECT_ASSIGNABLE = """
SELECT u.username FROM users u, divisions d
WHERE u.username = %(username)s AND d.code = %(division)s
  AND (d.code = u.division_code OR d.league_code = u.division_code OR d.region_code = u.division_code)
"""
UPDATE_ASSIGNEE = "UPDATE alerts SET assignee = %(assignee)s WHERE id = %(id)s RETURNING division_code"
INSERT_NOTE = "INSERT INTO alert_notes (alert_id, author, kind, body) VALUES (%s, %s, %s, %s)"

SELECT_EQUIPMENT_IN_SCOPE = """
SELECT e.id, e.category FROM equipment e JOIN divisions d ON d.code = e.banner_code
WHERE e.code = %(code)s AND (d.code = %(scope)s OR d.league_code = %(scope)s OR d.region_code = %(scope)s)
"""
SELECT_OVERRIDES = """
SELECT e.code AS equipment_code, o.rule_key, o.limit_value, o.low_value, o.deadband, o.on_delay_s, o.off_delay_s,
       o.enabled, o.reason, o.updated_by, o.updated_at
FROM alert_rule_overrides o JOIN equipment e ON e.id = o.equipment_id JOIN divisions d ON d.code = e.banner_code
WHERE (d.code = %(scope)s OR d.league_code = %(scope)s OR d.region_code = %(scope)s)
  AND (%(code)s::text IS NULL OR e.code = %(code)s)
ORDER BY e.code, o.rule_key
LIMIT 1000
"""
UPSERT_OVERRIDE = """
INSERT INTO alert_rule_overrides (equipment_id, rule_key, limit_value, low_value, deadband, on_delay_s, off_delay_s,
                                  enabled, reason, updated_by)
VALUES (%(equipment_id)s, %(rule_key)s, %(limit_value)s, %(low_value)s, %(deadband)s, %(on_delay_s)s,
        %(off_delay_s)s, %(enabled)s, %(reason)s, %(updated_by)s)
ON CONFLICT (equipment_id, rule_key) DO UPDATE SET
    limit_value = EXCLUDED.limit_value, low_value = EXCLUDED.low_value, deadband = EXCLUDED.deadband,
    on_delay_s = EXCLUDED.on_delay_s, off_delay_s = EXCLUDED.off_delay_s, enabled = EXCLUDED.enabled,
    reason = EXCLUDED.reason, updated_by = EXCLUDED.updated_by, updated_at = clock_timestamp()
"""
DELETE_OVERRIDE = "DELETE FROM alert_rule_overrides WHERE equipment_id = %s AND rule_key = %s"
INSERT_EQUIPMENT_AUDIT = """
INSERT INTO equipment_audit (equipment_id, actor, action, changes) VALUES (%s, %s, %s, %s)
"""


# The lists' optional filters ("%(x)s IS NULL OR …") need the values at planning time: a prepared statement's
# generic plan (psycopg prepares after 5 runs) cannot use the priority index and scans the registry
# (220 ms instead of 2 ms at 200,000 equipment, docs/decisions/alert-feed.md). These are never prepared.
def list_alerts(conn: psycopg.Connection[DictRow], *, by_priority: bool, **params: Any) -> list[dict[str, Any]]:
    statement = SELECT_ALERT_PAGE_BY_PRIORITY if by_priority else SELECT_ALERT_PAGE_BY_TIME
    return conn.execute(statement, params, prepare=False).fetchall()


def alert_totals(conn: psycopg.Connection[DictRow], **params: Any) -> list[dict[str, Any]]:
    """(severity, n, unacknowledged) under every filter of ``params`` but severity and the cursor."""
    return conn.execute(SELECT_ALERT_TOTALS, params, prepare=False).fetchall()


def list_supervision(conn: psycopg.Connection[DictRow], **params: Any) -> list[dict[str, Any]]:
    return conn.execute(SELECT_SUPERVISION_PAGE, params, prepare=False).fetchall()


def supervision_by_division(conn: psycopg.Connection[DictRow], **params: Any) -> list[dict[str, Any]]:
    return conn.execute(SELECT_SUPERVISION_BY_DIVISION, params, prepare=False).fetchall()


def get_alert(conn: psycopg.Connection[DictRow], *, scope: str, alert_id: int) -> dict[str, Any] | None:
    return conn.execute(SELECT_ALERT, {"scope": scope, "id": alert_id}).fetchone()


def transitions_of(conn: psycopg.Connection[DictRow], alert_id: int) -> list[dict[str, Any]]:
    return conn.execute(SELECT_TRANSITIONS, (alert_id,)).fetchall()


def notes_of(conn: psycopg.Connection[DictRow], alert_id: int) -> list[dict[str, Any]]:
    return conn.execute(SELECT_NOTES, (alert_id,)).fetchall()


def get_equipment_in_scope(conn: psycopg.Connection[DictRow], *, scope: str, code: str) -> dict[str, Any] | None:
    return conn.execute(SELECT_EQUIPMENT_IN_SCOPE, {"scope": scope, "code": code}).fetchone()


def list_overrides(conn: psycopg.Connection[DictRow], *, scope: str, code: str | None) -> list[dict[str, Any]]:
    return conn.execute(SELECT_OVERRIDES, {"scope": scope, "code": code}).fetchall()
