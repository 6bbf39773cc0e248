"""SQL of the alert worker: load what it owns, and write alert changes with their audit trail."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from alerts.engine.lifecycle import Action, AlarmState, AlarmStatus, transition
from alerts.engine.step import Effect, RaiseAlert

ENGINE_ACTOR = "engine"
NOTIFY_CHANNEL = "safewatch_alerts"

SELECT_EQUIPMENT_OF_LEAGUES = """
SELECT e.id, e.code, e.category, e.rated, e.banner_code, d.league_code, e.status, e.gateway_id
FROM equipment e JOIN divisions d ON d.code = e.banner_code
WHERE cardinality(%(leagues)s::text[]) = 0 OR d.league_code = ANY(%(leagues)s::text[])
"""
SELECT_EQUIPMENT_BY_CODES = """
SELECT e.id, e.code, e.category, e.rated, e.banner_code, d.league_code, e.status, e.gateway_id
FROM equipment e JOIN divisions d ON d.code = e.banner_code
WHERE e.code = ANY(%(codes)s::text[])
  AND (cardinality(%(leagues)s::text[]) = 0 OR d.league_code = ANY(%(leagues)s::text[]))
"""
SELECT_ACTIVE_CONDITIONS = """
SELECT a.equipment_id, a.rule_key FROM alerts a
WHERE a.closed_at IS NULL AND a.active
  AND (cardinality(%(leagues)s::text[]) = 0 OR a.league_code = ANY(%(leagues)s::text[]))
"""
SELECT_OPEN_ALERT_FOR_UPDATE = """
SELECT id, state, active, latched FROM alerts
WHERE equipment_id = %s AND rule_key = %s AND closed_at IS NULL
FOR UPDATE
"""
INSERT_ALERT = """
INSERT INTO alerts (equipment_id, rule_key, severity, state, active, latched, level, division_code, league_code,
                    metric, value, limit_value, message, opened_at, updated_at)
VALUES (%(equipment_id)s, %(rule_key)s, %(severity)s, 'active_unack', true, %(latched)s, 'banner',
        %(division_code)s, %(league_code)s, %(metric)s, %(value)s, %(limit)s, %(message)s,
        timestamptz 'epoch' + %(ts_ms)s * interval '1 millisecond',
        timestamptz 'epoch' + %(ts_ms)s * interval '1 millisecond')
RETURNING id
"""
UPDATE_ALERT_CONDITION = """
UPDATE alerts SET state = %(state)s, active = %(active)s,
    value = coalesce(%(value)s, value),
    updated_at = timestamptz 'epoch' + %(ts_ms)s * interval '1 millisecond',
    cleared_at = CASE WHEN %(active)s THEN NULL
                      ELSE timestamptz 'epoch' + %(ts_ms)s * interval '1 millisecond' END,
    closed_at = CASE WHEN %(state)s = 'normal' THEN clock_timestamp() END
WHERE id = %(id)s
"""
INSERT_TRANSITION = """
INSERT INTO alert_transitions (alert_id, from_state, to_state, actor, reason) VALUES (%s, %s, %s, %s, %s)
"""
NOTIFY_ALERT = "SELECT pg_notify('" + NOTIFY_CHANNEL + "', %s)"


@dataclass(frozen=True, slots=True)
class EquipmentInfo:
    id: int
    code: str
    category: str
    rated: dict[str, float]
    banner_code: str
    league_code: str
    status: str
    gateway_id: str | None


def _info(row: tuple[Any, ...]) -> EquipmentInfo:
    eq_id, code, category, rated, banner, league, status, gateway_id = row
    numeric = {k: float(v) for k, v in (rated or {}).items() if isinstance(v, int | float)}
    return EquipmentInfo(eq_id, code, category, numeric, banner, league, status, gateway_id)


def load_equipment(conn: psycopg.Connection, leagues: list[str]) -> list[EquipmentInfo]:
    return [_info(r) for r in conn.execute(SELECT_EQUIPMENT_OF_LEAGUES, {"leagues": leagues})]


def load_equipment_by_codes(conn: psycopg.Connection, codes: list[str], leagues: list[str]) -> list[EquipmentInfo]:
    return [_info(r) for r in conn.execute(SELECT_EQUIPMENT_BY_CODES, {"codes": codes, "leagues": leagues})]


def load_active_conditions(conn: psycopg.Connection, leagues: list[str]) -> list[tuple[int, str]]:
    """(equipment, rule) pairs whose alert is open with the condition present: restart state."""
    return [(r[0], r[1]) for r in conn.execute(SELECT_ACTIVE_CONDITIONS, {"leagues": leagues})]


def apply_effects(conn: psycopg.Connection, effects: Iterable[Effect],
                  equipment: dict[int, EquipmentInfo]) -> list[int]:
    """Carry out effects in the caller's transaction; return the ids of the alerts changed."""
    changed: list[int] = []
    for effect in effects:
        row = conn.execute(SELECT_OPEN_ALERT_FOR_UPDATE, (effect.equipment_id, effect.rule_key)).fetchone()
        if isinstance(effect, RaiseAlert):
            if row is None:
                info = equipment[effect.equipment_id]
                alert_id = conn.execute(INSERT_ALERT, {
                    "equipment_id": effect.equipment_id, "rule_key": effect.rule_key,
                    "severity": str(effect.severity), "latched": effect.latched,
                    "division_code": info.banner_code, "league_code": info.league_code, "metric": effect.metric,
                    "value": effect.value, "limit": effect.limit, "message": effect.message, "ts_ms": effect.ts_ms,
                }).fetchone()[0]
                conn.execute(INSERT_TRANSITION, (alert_id, None, AlarmState.ACTIVE_UNACK, ENGINE_ACTOR, effect.message))
                changed.append(alert_id)
                continue
            action, value, reason = Action.CONDITION_ON, effect.value, effect.message
        else:
            if row is None:
                continue
            action, value, reason = Action.CONDITION_OFF, effect.value, "condition returned to normal"
        alert_id, state, active, latched = row
        after = transition(AlarmStatus(AlarmState(state), active, latched), action)
        conn.execute(UPDATE_ALERT_CONDITION, {"id": alert_id, "state": str(after.state), "active": after.active,
                                              "value": value, "ts_ms": effect.ts_ms})
        if after.state != state:
            conn.execute(INSERT_TRANSITION, (alert_id, state, str(after.state), ENGINE_ACTOR, reason))
        changed.append(alert_id)
    for alert_id in changed:
        conn.execute(NOTIFY_ALERT, (str(alert_id),))
    return changed


