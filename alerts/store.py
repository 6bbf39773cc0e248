"""SQL of the alert worker: load what it owns, and write alert changes with their audit trail.

Every state change writes one ``alert_transitions`` row (who, when, why) in the same transaction as
the alert row, and a ``pg_notify('safewatch_alerts', id)``: the escalation engine and the dashboard
react to those. The ``level`` column belongs to escalation and is never written here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerts.engine.inspection import RegistryFacts
from alerts.engine.lifecycle import Action, AlarmState, AlarmStatus, opening_state, transition
from alerts.engine.rules import Override
from alerts.engine.step import Effect, RaiseAlert
from safewatch.contract import Severity

ENGINE_ACTOR = "engine"
NOTIFY_CHANNEL = "safewatch_alerts"
EQUIPMENT_STATUS = "equipment_status"  # suppressed_by value when the equipment itself is out of service

_EQUIPMENT_COLUMNS = "e.id, e.code, e.category, e.rated, e.banner_code, d.league_code, e.status, e.gateway_id"
_IN_LEAGUES = "(cardinality(%(leagues)s::text[]) = 0 OR d.league_code = ANY(%(leagues)s::text[]))"
SELECT_EQUIPMENT_OF_LEAGUES = f"""
SELECT {_EQUIPMENT_COLUMNS} FROM equipment e JOIN divisions d ON d.code = e.banner_code WHERE {_IN_LEAGUES}
"""
SELECT_EQUIPMENT_BY_CODES = f"""
SELECT {_EQUIPMENT_COLUMNS} FROM equipment e JOIN divisions d ON d.code = e.banner_code
WHERE e.code = ANY(%(codes)s::text[]) AND {_IN_LEAGUES}
"""
SELECT_EQUIPMENT_OF_GATEWAY = f"""
SELECT {_EQUIPMENT_COLUMNS} FROM equipment e JOIN divisions d ON d.code = e.banner_code
WHERE e.gateway_id = %(gateway)s AND {_IN_LEAGUES}
"""
SELECT_OVERRIDES = f"""
SELECT o.equipment_id, o.rule_key, o.limit_value, o.low_value, o.deadband, o.on_delay_s, o.off_delay_s, o.enabled
FROM alert_rule_overrides o JOIN equipment e ON e.id = o.equipment_id JOIN divisions d ON d.code = e.banner_code
WHERE {_IN_LEAGUES}
"""
SELECT_ACTIVE_CONDITIONS = """
SELECT a.equipment_id, a.rule_key FROM alerts a
WHERE a.closed_at IS NULL AND a.active
  AND (cardinality(%(leagues)s::text[]) = 0 OR a.league_code = ANY(%(leagues)s::text[]))
"""
SELECT_OPEN_ALERT_FOR_UPDATE = """
SELECT id, state, active, latched, severity, suppressed_by, division_code FROM alerts
WHERE equipment_id = %s AND rule_key = %s AND closed_at IS NULL
FOR UPDATE
"""
INSERT_ALERT = """
INSERT INTO alerts (equipment_id, rule_key, kind, severity, state, active, latched, division_code, league_code,
                    metric, value, limit_value, message, opened_at, updated_at, suppressed_by, chattering)
VALUES (%(equipment_id)s, %(rule_key)s, %(kind)s, %(severity)s, %(state)s, true, %(latched)s,
        %(division_code)s, %(league_code)s, %(metric)s, %(value)s, %(limit)s, %(message)s,
        timestamptz 'epoch' + %(ts_ms)s * interval '1 millisecond',
        timestamptz 'epoch' + %(ts_ms)s * interval '1 millisecond', %(suppressed_by)s, %(chattering)s)
RETURNING id
"""
UPDATE_ALERT_CONDITION = """
UPDATE alerts SET state = %(state)s, active = %(active)s, latched = %(latched)s,
    value = coalesce(%(value)s, value),
    raise_count = raise_count + %(raised)s::int,
    chattering = chattering OR %(chattering)s,
    updated_at = greatest(updated_at, timestamptz 'epoch' + %(ts_ms)s * interval '1 millisecond'),
    cleared_at = CASE WHEN %(active)s THEN NULL
                      ELSE timestamptz 'epoch' + %(ts_ms)s * interval '1 millisecond' END,
    closed_at = CASE WHEN %(state)s = 'normal' THEN clock_timestamp() END
WHERE id = %(id)s
"""
INSERT_TRANSITION = """
INSERT INTO alert_transitions (alert_id, from_state, to_state, actor, reason, event_at)
VALUES (%s, %s, %s, %s, %s, timestamptz 'epoch' + %s * interval '1 millisecond')
"""
NOTIFY_ALERT = "SELECT pg_notify('" + NOTIFY_CHANNEL + "', %s)"

SELECT_EXPIRED_SHELVES = """
SELECT id, state, active, latched, severity FROM alerts
WHERE state = 'shelved' AND shelved_until <= %(now)s
  AND (cardinality(%(leagues)s::text[]) = 0 OR league_code = ANY(%(leagues)s::text[]))
FOR UPDATE SKIP LOCKED
"""
# Open alerts whose equipment left service (to suppress) or came back (to release).
SELECT_STATUS_MISMATCH = """
SELECT a.id, a.state, a.active, a.latched, a.severity, e.status FROM alerts a JOIN equipment e ON e.id = a.equipment_id
WHERE a.closed_at IS NULL
  AND (cardinality(%(leagues)s::text[]) = 0 OR a.league_code = ANY(%(leagues)s::text[]))
  AND ((e.status <> 'in_use' AND a.state NOT IN ('suppressed', 'out_of_service'))
       OR (e.status = 'in_use' AND a.state = 'suppressed' AND a.suppressed_by = 'equipment_status')
       OR (e.status = 'in_use' AND a.state = 'out_of_service'))
FOR UPDATE OF a SKIP LOCKED
"""
UPDATE_ALERT_STATE = """
UPDATE alerts SET state = %(state)s, active = %(active)s, latched = %(latched)s,
    suppressed_by = coalesce(%(suppressed_by)s, suppressed_by),
    shelved_until = CASE WHEN %(state)s = 'shelved' THEN shelved_until END,
    shelved_by = CASE WHEN %(state)s = 'shelved' THEN shelved_by END,
    closed_at = CASE WHEN %(state)s = 'normal' THEN clock_timestamp() END
WHERE id = %(id)s
"""
# The registry facts of inspection alerts. to_jsonb(e) reads registration_expires_on when the registry
# has such a column and yields NULL when it has not, so this query does not depend on it.
SELECT_REGISTRY_FACTS = f"""
SELECT e.id, e.category, e.status, e.next_inspection_on, e.registration_no, e.commissioned_on,
       (to_jsonb(e) ->> 'registration_expires_on')::date AS registration_expires_on,
       coalesce(array_agg(a.rule_key) FILTER (WHERE a.id IS NOT NULL), '{{}}') AS open_keys
FROM equipment e JOIN divisions d ON d.code = e.banner_code
LEFT JOIN alerts a ON a.equipment_id = e.id AND a.closed_at IS NULL AND a.kind = 'inspection'
WHERE {_IN_LEAGUES}
GROUP BY e.id
"""
UPSERT_ENGINE_STATE = """
INSERT INTO alert_engine_state (equipment_id, state) VALUES (%s, %s)
ON CONFLICT (equipment_id) DO UPDATE SET state = EXCLUDED.state, saved_at = clock_timestamp()
"""
SELECT_ENGINE_STATES = f"""
SELECT s.equipment_id, s.state FROM alert_engine_state s
JOIN equipment e ON e.id = s.equipment_id JOIN divisions d ON d.code = e.banner_code
WHERE {_IN_LEAGUES}
"""
SELECT_CHECKPOINT = f"""
SELECT s.equipment_id, s.packed, s.tables, s.table_marks, s.state FROM alert_engine_state s
JOIN equipment e ON e.id = s.equipment_id JOIN divisions d ON d.code = e.banner_code
WHERE {_IN_LEAGUES}
"""
SELECT_SHARD_CHECKPOINT = "SELECT packed FROM alert_engine_shard WHERE shard = %(shard)s"
CREATE_CHECKPOINT_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS alert_engine_state_in (equipment_id integer NOT NULL, packed bytea NOT NULL,
                                                      tables bytea, table_marks bytea)
ON COMMIT DELETE ROWS
"""
COPY_CHECKPOINT = "COPY alert_engine_state_in (equipment_id, packed, tables, table_marks) FROM STDIN (FORMAT BINARY)"
# Detector tables are written whole only now and then (NULL: the ones written before still hold); the bytes
# changed since are appended to table_marks, which whole tables reset.
UPSERT_CHECKPOINT = """
INSERT INTO alert_engine_state (equipment_id, packed, tables, table_marks, state)
SELECT equipment_id, packed, tables, table_marks, NULL FROM alert_engine_state_in
ON CONFLICT (equipment_id) DO UPDATE SET packed = EXCLUDED.packed,
    tables = coalesce(EXCLUDED.tables, alert_engine_state.tables),
    table_marks = CASE WHEN EXCLUDED.tables IS NOT NULL THEN NULL
                       WHEN EXCLUDED.table_marks IS NULL THEN alert_engine_state.table_marks
                       ELSE coalesce(alert_engine_state.table_marks, ''::bytea) || EXCLUDED.table_marks END,
    state = NULL, saved_at = clock_timestamp()
"""
UPSERT_SHARD_CHECKPOINT = """
INSERT INTO alert_engine_shard (shard, packed) VALUES (%(shard)s, %(packed)s)
ON CONFLICT (shard) DO UPDATE SET packed = EXCLUDED.packed, saved_at = clock_timestamp()
"""
SELECT_EFFECT_MARKS = f"""
SELECT m.equipment_id, m.rule_key, m.seq FROM alert_effect_marks m
JOIN equipment e ON e.id = m.equipment_id JOIN divisions d ON d.code = e.banner_code
WHERE {_IN_LEAGUES}
"""
UPSERT_EFFECT_MARKS = """
INSERT INTO alert_effect_marks (equipment_id, rule_key, seq)
SELECT * FROM unnest(%(ids)s::integer[], %(keys)s::text[], %(seqs)s::bigint[])
ON CONFLICT (equipment_id, rule_key) DO UPDATE SET seq = greatest(alert_effect_marks.seq, EXCLUDED.seq)
"""
COUNT_OPEN_ALERTS = """
SELECT severity, state, count(*) FROM alerts
WHERE closed_at IS NULL AND (cardinality(%(leagues)s::text[]) = 0 OR league_code = ANY(%(leagues)s::text[]))
GROUP BY 1, 2
"""
INSERT_FLOOD = """
INSERT INTO alert_floods (division_code, started_at, peak_count)
VALUES (%(division)s, timestamptz 'epoch' + %(ts_ms)s * interval '1 millisecond', %(peak)s)
ON CONFLICT (division_code) WHERE ended_at IS NULL DO UPDATE SET peak_count = greatest(alert_floods.peak_count,
                                                                                       EXCLUDED.peak_count)
"""
END_FLOOD = """
UPDATE alert_floods SET ended_at = timestamptz 'epoch' + %(ts_ms)s * interval '1 millisecond',
    peak_count = greatest(peak_count, %(peak)s)
WHERE division_code = %(division)s AND ended_at IS NULL
"""


# One equipment's checkpoint as written: its packed state, its detector's bit tables whole (None: the
# ones written before hold) and the table bytes changed since (None: none), `FleetDetector.checkpoint`.
PackedState = tuple[bytes, bytes | None, bytes | None]


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


@dataclass(frozen=True, slots=True)
class Applied:
    """One alert written by `apply_effects`."""

    alert_id: int
    created: bool  # a new alert (not a re-trigger or a clear)
    state: str
    division_code: str
    ts_ms: int


def _info(row: tuple[Any, ...]) -> EquipmentInfo:
    eq_id, code, category, rated, banner, league, status, gateway_id = row
    numeric = {k: float(v) for k, v in (rated or {}).items() if isinstance(v, int | float)}
    return EquipmentInfo(eq_id, code, category, numeric, banner, league, status, gateway_id)


def load_equipment(conn: psycopg.Connection, leagues: list[str]) -> list[EquipmentInfo]:
    """Every equipment of the worker's leagues (all when ``leagues`` is empty)."""
    return [_info(r) for r in conn.execute(SELECT_EQUIPMENT_OF_LEAGUES, {"leagues": leagues})]


def load_equipment_by_codes(conn: psycopg.Connection, codes: list[str], leagues: list[str]) -> list[EquipmentInfo]:
    """The equipment of ``codes`` that lie in the worker's leagues."""
    return [_info(r) for r in conn.execute(SELECT_EQUIPMENT_BY_CODES, {"codes": codes, "leagues": leagues})]


def load_equipment_of_gateway(conn: psycopg.Connection, gateway_id: str, leagues: list[str]) -> list[EquipmentInfo]:
    """The equipment bound to one gateway (in the worker's leagues)."""
    return [_info(r) for r in conn.execute(SELECT_EQUIPMENT_OF_GATEWAY, {"gateway": gateway_id, "leagues": leagues})]


def load_overrides(conn: psycopg.Connection, leagues: list[str]) -> dict[int, dict[str, Override]]:
    """Per-equipment rule overrides, by equipment id and rule key."""
    out: dict[int, dict[str, Override]] = {}
    for eq_id, key, limit, low, deadband, on_d, off_d, enabled in conn.execute(SELECT_OVERRIDES, {"leagues": leagues}):
        out.setdefault(eq_id, {})[key] = Override(key, limit, low, deadband, on_d, off_d, enabled)
    return out


def load_active_conditions(conn: psycopg.Connection, leagues: list[str]) -> list[tuple[int, str]]:
    """(equipment, rule) pairs whose alert is open with the condition present: restart state."""
    return [(r[0], r[1]) for r in conn.execute(SELECT_ACTIVE_CONDITIONS, {"leagues": leagues})]


def load_registry_facts(conn: psycopg.Connection, leagues: list[str]) -> list[tuple[RegistryFacts, str, set[str]]]:
    """(facts, category, rule keys of open inspection alerts) per equipment."""
    out = []
    for eq_id, category, status, next_on, reg_no, commissioned, expires, open_keys in conn.execute(
            SELECT_REGISTRY_FACTS, {"leagues": leagues}):
        out.append((RegistryFacts(eq_id, status, next_on, reg_no, commissioned, expires), category, set(open_keys)))
    return out


def _record(conn: psycopg.Connection, alert_id: int, before: str | None, after: str, actor: str, reason: str,
            ts_ms: int | None = None) -> None:
    conn.execute(INSERT_TRANSITION, (alert_id, before, after, actor, reason, ts_ms))


def apply_effects(conn: psycopg.Connection, effects: Iterable[Effect],
                  equipment: dict[int, EquipmentInfo]) -> list[int]:
    """Carry out effects in the caller's transaction; return the ids of the alerts changed."""
    return list(dict.fromkeys(a.alert_id for a in write_effects(conn, effects, equipment)))


def write_effects(conn: psycopg.Connection, effects: Iterable[Effect],
                  equipment: dict[int, EquipmentInfo]) -> list[Applied]:
    """Carry out effects in the caller's transaction; return what was written, in order."""
    applied: list[Applied] = []
    for effect in effects:
        row = conn.execute(SELECT_OPEN_ALERT_FOR_UPDATE, (effect.equipment_id, effect.rule_key)).fetchone()
        info = equipment[effect.equipment_id]
        if isinstance(effect, RaiseAlert):
            if row is None:
                state, why = opening_state(equipment_status=info.status, suppressed_by=effect.suppressed_by)
                suppressed_by = (EQUIPMENT_STATUS if info.status == "suspended" and state is AlarmState.SUPPRESSED
                                 else effect.suppressed_by if state is AlarmState.SUPPRESSED else None)
                inserted = conn.execute(INSERT_ALERT, {
                    "equipment_id": effect.equipment_id, "rule_key": effect.rule_key, "kind": str(effect.kind),
                    "severity": str(effect.severity), "state": str(state), "latched": effect.latched,
                    "division_code": info.banner_code, "league_code": info.league_code, "metric": effect.metric,
                    "value": effect.value, "limit": effect.limit, "message": effect.message, "ts_ms": effect.ts_ms,
                    "suppressed_by": suppressed_by, "chattering": effect.chattering,
                }).fetchone()
                assert inserted is not None  # INSERT … RETURNING always returns the row
                alert_id = inserted[0]
                _record(conn, alert_id, None, str(state), ENGINE_ACTOR,
                        effect.message if why is None else f"{effect.message}; {why}", effect.ts_ms)
                applied.append(Applied(alert_id, True, str(state), info.banner_code, effect.ts_ms))
                continue
            action, value, reason, raised = Action.CONDITION_ON, effect.value, effect.message, 1
        else:
            if row is None:
                continue
            action, value, reason, raised = Action.CONDITION_OFF, effect.value, "condition returned to normal", 0
        alert_id, state, active, latched, severity, suppressed_by, division = row
        status = AlarmStatus(AlarmState(state), active, latched, severity == Severity.CRITICAL)
        after = transition(status, action)
        if (isinstance(effect, RaiseAlert) and effect.suppressed_by is None and after.state is AlarmState.SUPPRESSED
                and suppressed_by not in (None, EQUIPMENT_STATUS)):
            after = transition(after, Action.UNSUPPRESS)  # its cause has cleared: annunciate it now
            reason = f"{reason}; no longer suppressed: cause {suppressed_by} cleared"
        conn.execute(UPDATE_ALERT_CONDITION, {
            "id": alert_id, "state": str(after.state), "active": after.active, "latched": after.latched,
            "value": value, "ts_ms": effect.ts_ms, "raised": raised, "chattering": effect.chattering})
        if after.state != state:
            _record(conn, alert_id, state, str(after.state), ENGINE_ACTOR, reason, effect.ts_ms)
        applied.append(Applied(alert_id, False, str(after.state), division, effect.ts_ms))
    for alert_id in dict.fromkeys(a.alert_id for a in applied):
        conn.execute(NOTIFY_ALERT, (str(alert_id),))
    return applied


def _change_state(conn: psycopg.Connection, row: tuple[Any, ...], action: Action, *, reason: str,
                  suppressed_by: str | None = None) -> None:
    alert_id, state, active, latched, severity = row[:5]
    after = transition(AlarmStatus(AlarmState(state), active, latched, severity == Severity.CRITICAL), action)
    conn.execute(UPDATE_ALERT_STATE, {"id": alert_id, "state": str(after.state), "active": after.active,
                                      "latched": after.latched, "suppressed_by": suppressed_by})
    _record(conn, alert_id, state, str(after.state), ENGINE_ACTOR, reason)
    conn.execute(NOTIFY_ALERT, (str(alert_id),))


def expire_shelves(conn: psycopg.Connection, *, now: datetime, leagues: list[str]) -> int:
    """Unshelve alerts whose shelving ended at or before ``now``; return how many."""
    rows = conn.execute(SELECT_EXPIRED_SHELVES, {"now": now, "leagues": leagues}).fetchall()
    for row in rows:
        _change_state(conn, row, Action.UNSHELVE, reason="shelving expired")
    return len(rows)


def sync_equipment_status(conn: psycopg.Connection, *, leagues: list[str]) -> int:
    """Suppress open alerts of equipment out of service, release them when it is back; return how many."""
    rows = conn.execute(SELECT_STATUS_MISMATCH, {"leagues": leagues}).fetchall()
    for row in rows:
        status = row[5]
        if status in ("scrapped", "cancelled"):
            _change_state(conn, row, Action.REMOVE_FROM_SERVICE, reason=f"out of service: the equipment is {status}")
        elif status != "in_use":
            _change_state(conn, row, Action.SUPPRESS, suppressed_by=EQUIPMENT_STATUS,
                          reason="suppressed by design: the equipment is out of service (停用)")
        elif row[1] == AlarmState.OUT_OF_SERVICE:
            _change_state(conn, row, Action.RETURN_TO_SERVICE, reason="the equipment is back in use")
        else:
            _change_state(conn, row, Action.UNSUPPRESS, reason="the equipment is back in use")
    return len(rows)


def save_engine_states(conn: psycopg.Connection, states: dict[int, dict[str, Any]]) -> int:
    """Save the engine's per-equipment states (plain data from `state_to_plain`); return how many."""
    with conn.cursor() as cur:
        cur.executemany(UPSERT_ENGINE_STATE, [(eq_id, Jsonb(plain)) for eq_id, plain in states.items()])
    return len(states)


def load_engine_states(conn: psycopg.Connection, leagues: list[str]) -> dict[int, dict[str, Any]]:
    """The saved states of the equipment of the worker's leagues."""
    return {eq_id: state for eq_id, state in conn.execute(SELECT_ENGINE_STATES, {"leagues": leagues})}


def count_open_alerts(conn: psycopg.Connection, *, leagues: list[str]) -> dict[tuple[str, str], int]:
    """Open alerts of the worker's leagues by (severity, state), for the active-alerts gauge."""
    return {(sev, state): n for sev, state, n in conn.execute(COUNT_OPEN_ALERTS, {"leagues": leagues})}


def record_flood(conn: psycopg.Connection, *, division: str, started: bool, ts_ms: int, peak: int) -> None:
    """Open or close the flood record of one division."""
    conn.execute(INSERT_FLOOD if started else END_FLOOD, {"division": division, "ts_ms": ts_ms, "peak": peak})


def shard_key(leagues: Iterable[str]) -> str:
    """The key of a worker's shard checkpoint: its league codes, sorted ('' when it owns every league)."""
    return ",".join(sorted(set(leagues)))


def load_checkpoint(conn: psycopg.Connection, leagues: list[str]
                    ) -> tuple[dict[int, PackedState], dict[int, dict[str, Any]], bytes | None]:
    """The shard's checkpoint: packed states (with their detector tables and marks) by equipment, older plain
    (jsonb) states of equipment never checkpointed, and the shard's own packed state (None before its
    first checkpoint)."""
    packed: dict[int, PackedState] = {}
    plain: dict[int, dict[str, Any]] = {}
    for eq_id, data, tables, marks, state in conn.execute(SELECT_CHECKPOINT, {"leagues": leagues}):
        if data is not None:
            packed[eq_id] = (bytes(data), None if tables is None else bytes(tables),
                             None if marks is None else bytes(marks))
        elif state is not None:
            plain[eq_id] = state
    row = conn.execute(SELECT_SHARD_CHECKPOINT, {"shard": shard_key(leagues)}).fetchone()
    return packed, plain, None if row is None else bytes(row[0])


def save_checkpoint(conn: psycopg.Connection, *, leagues: list[str],
                    equipment: dict[int, PackedState], shard: bytes) -> None:
    """Write a checkpoint in the caller's transaction: the changed equipment (COPY, then one upsert) and
    the shard's state."""
    if equipment:
        conn.execute(CREATE_CHECKPOINT_STAGING)
        with conn.cursor() as cur, cur.copy(COPY_CHECKPOINT) as copy:
            copy.set_types(["int4", "bytea", "bytea", "bytea"])
            for eq_id, (data, tables, marks) in equipment.items():
                copy.write_row((eq_id, data, tables, marks))
        conn.execute(UPSERT_CHECKPOINT)
    conn.execute(UPSERT_SHARD_CHECKPOINT, {"shard": shard_key(leagues), "packed": shard})


def load_effect_marks(conn: psycopg.Connection, leagues: list[str]) -> dict[int, dict[str, int]]:
    """The ordinal of the last engine effect written, by equipment and rule key."""
    out: dict[int, dict[str, int]] = {}
    for eq_id, key, seq in conn.execute(SELECT_EFFECT_MARKS, {"leagues": leagues}):
        out.setdefault(eq_id, {})[key] = seq
    return out


def record_effect_marks(conn: psycopg.Connection, marks: Iterable[tuple[int, str, int]]) -> None:
    """Keep the ordinals of the engine effects just written, in their transaction."""
    last: dict[tuple[int, str], int] = {}
    for eq_id, key, seq in marks:  # one row per key: an upsert may not touch a row twice
        if seq > last.get((eq_id, key), 0):
            last[(eq_id, key)] = seq
    ids = [eq_id for eq_id, _ in last]
    keys = [key for _, key in last]
    seqs = list(last.values())
    if ids:
        conn.execute(UPSERT_EFFECT_MARKS, {"ids": ids, "keys": keys, "seqs": seqs})
