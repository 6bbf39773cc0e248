"""SQL of the dashboard's own read models: alerts on the map, the emergency console, live values of one equipment.

Everything is scoped by the caller's jurisdiction with the shared IN_SCOPE test.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import DictRow

from api.alerts.queries import ACKNOWLEDGED, SEVERITY_RANK
from api.deps import IN_SCOPE
from api.divisions.arrival import ARRIVAL_DEADLINE_AT, TRAPPED_RULE_KEY
from safewatch.schema.layout import READING_TABLES, ReadingTable

# Open hazards, drawn one by one on top of the cells: the most severe first, so a cap never drops a
# critical; the overview says how many there are (map_alerts_total) beside how many it draws.
MAP_ALERTS_LIMIT = 2000
SELECT_MAP_ALERTS = f"""
SELECT a.id, a.severity, e.lat, e.lon, e.code AS equipment_code, count(*) OVER () AS total
FROM alerts a
JOIN equipment e ON e.id = a.equipment_id
JOIN divisions d ON d.code = a.division_code
WHERE {IN_SCOPE} AND a.closed_at IS NULL AND a.world = 'hazard' AND e.lat IS NOT NULL AND e.lon IS NOT NULL
ORDER BY {SEVERITY_RANK}, a.id DESC
LIMIT {MAP_ALERTS_LIMIT}
"""

# The escalation notifier's next pending climb of alert a (migration 020): when and to which level.
NEXT_CLIMB = """
SELECT t.due_at, t.level FROM escalation_timers t
WHERE t.alert_id = a.id AND t.kind = 'climb' AND t.fired_at IS NULL AND t.cancelled_at IS NULL
ORDER BY t.due_at LIMIT 1
"""
SELECT_NEXT_ESCALATIONS = f"""
SELECT a.id AS alert_id, nx.due_at AS next_escalation_at, nx.level AS next_level
FROM alerts a JOIN divisions d ON d.code = a.division_code
JOIN LATERAL ({NEXT_CLIMB}) nx ON true
WHERE {IN_SCOPE} AND a.closed_at IS NULL
"""

# Open hazards (never supervision matters) that are critical or escalated above banner level: trapped
# passengers first, then by severity, then unacknowledged, then the longest-waiting first (their response
# clock has run the longest). Paged on that key; the totals count the whole console.
EMERGENCY_WHERE = f"""{IN_SCOPE} AND a.closed_at IS NULL AND a.world = 'hazard'
  AND (a.severity = 'critical' OR a.level <> 'banner')"""
EMERGENCY_KEY = f"(a.rule_key <> %(trapped)s, {SEVERITY_RANK}, {ACKNOWLEDGED}, a.opened_at, a.id)"
SELECT_EMERGENCY = f"""
SELECT a.id, e.code AS equipment_code, e.category, a.rule_key, a.severity, a.state, a.active, a.latched,
       a.level, a.division_code, d.name AS division_name, d.name_en AS division_name_en, a.league_code,
       a.message, a.opened_at, e.address, e.lat, e.lon, u.name AS unit_name, u.safety_manager,
       u.phone AS unit_phone, (a.rule_key = %(trapped)s) AS trapped
       , nx.due_at AS next_escalation_at, nx.level AS next_level, {ARRIVAL_DEADLINE_AT} AS arrival_deadline_at,
       {SEVERITY_RANK} AS severity_rank, {ACKNOWLEDGED} AS acknowledged
FROM alerts a
JOIN equipment e ON e.id = a.equipment_id
JOIN divisions d ON d.code = a.division_code
LEFT JOIN units u ON u.id = e.unit_id
LEFT JOIN LATERAL ({NEXT_CLIMB}) nx ON true
WHERE {EMERGENCY_WHERE}
  AND (%(after_id)s::bigint IS NULL OR {EMERGENCY_KEY} > (%(after_not_trapped)s::boolean, %(after_rank)s::int,
                                                          %(after_acked)s::boolean, %(after_opened)s::timestamptz,
                                                          %(after_id)s::bigint))
ORDER BY {EMERGENCY_KEY}
LIMIT %(limit)s
"""
SELECT_EMERGENCY_TOTALS = f"""
SELECT a.severity, count(*) AS n, count(*) FILTER (WHERE NOT {ACKNOWLEDGED}) AS unacknowledged,
       count(*) FILTER (WHERE a.rule_key = %(trapped)s) AS trapped
FROM alerts a JOIN divisions d ON d.code = a.division_code
WHERE {EMERGENCY_WHERE}
GROUP BY a.severity
"""

# The latest value of each metric of one equipment within the last day, from its category's table:
# per metric one backward probe of the key (equipment_id, time), stopping at the first row that has
# it (the first row, unless the gateway sends that metric less often). Unfolding the day through the
# readings view and keeping the latest per metric instead reads the whole day (measured: docs/performance.md).
LATEST_OF_METRIC = """
(SELECT {metric_id}::smallint AS metric_id, {column} AS value, time FROM {table}
 WHERE equipment_id = %(equipment_id)s AND time > now() - interval '1 day' AND {column} IS NOT NULL
 ORDER BY time DESC LIMIT 1)
"""
SELECT_LATEST_VALUES = """
SELECT m.key AS metric, m.unit, l.value, l.time
FROM ({latest_of_each}) l JOIN metrics m ON m.id = l.metric_id
ORDER BY l.metric_id
"""


def _latest_values_of(table: ReadingTable) -> sql.Composed:
    parts = [sql.SQL(LATEST_OF_METRIC).format(metric_id=sql.Literal(m.id), column=sql.Identifier(m.key),
                                              table=sql.Identifier(table.name)) for m in table.metrics]
    return sql.SQL(SELECT_LATEST_VALUES).format(latest_of_each=sql.SQL(" UNION ALL ").join(parts))


LATEST_VALUES_BY_CATEGORY: dict[str, sql.Composed] = {t.category: _latest_values_of(t) for t in READING_TABLES}

SELECT_EQUIPMENT_IN_SCOPE = f"""
SELECT e.id, e.category FROM equipment e JOIN divisions d ON d.code = e.banner_code
WHERE {IN_SCOPE} AND e.code = %(code)s
"""
SELECT_RECENT_EVENTS = """
SELECT time, type, active, details FROM events WHERE equipment_id = %(equipment_id)s ORDER BY time DESC LIMIT 50
"""

# Where a notified alert belongs: the SSE hub delivers it only to subscribers whose jurisdiction holds it.
SELECT_ALERT_PLACE = """
SELECT a.id, a.severity, a.world, a.state, a.active, a.level, a.rule_key, a.division_code, d.league_code,
       d.region_code, a.committed_at AS learned_at
FROM alerts a JOIN divisions d ON d.code = a.division_code
WHERE a.id = ANY(%(ids)s::bigint[])
"""


def map_alerts(conn: psycopg.Connection[DictRow], *, scope: str) -> list[dict[str, Any]]:
    return conn.execute(SELECT_MAP_ALERTS, {"scope": scope}).fetchall()


def next_escalations(conn: psycopg.Connection[DictRow], *, scope: str) -> list[dict[str, Any]]:
    return conn.execute(SELECT_NEXT_ESCALATIONS, {"scope": scope}).fetchall()


def emergency_alerts(conn: psycopg.Connection[DictRow], *, scope: str, after: list[Any] | None,
                     limit: int) -> list[dict[str, Any]]:
    """One page of the console after the key ``after`` ([not trapped, severity rank, acknowledged, opened_at, id])."""
    names = ("after_not_trapped", "after_rank", "after_acked", "after_opened", "after_id")
    # Not prepared: the optional cursor needs its value at planning time (see api/alerts/queries.py).
    return conn.execute(SELECT_EMERGENCY, {"scope": scope, "trapped": TRAPPED_RULE_KEY, "limit": limit,
                                           **dict(zip(names, after or [None] * 5, strict=True))},
                        prepare=False).fetchall()


def emergency_totals(conn: psycopg.Connection[DictRow], *, scope: str) -> list[dict[str, Any]]:
    return conn.execute(SELECT_EMERGENCY_TOTALS, {"scope": scope, "trapped": TRAPPED_RULE_KEY}).fetchall()


def equipment_in_scope(conn: psycopg.Connection[DictRow], *, scope: str, code: str) -> tuple[int, str] | None:
    """(id, category) of the equipment ``code`` when it is in ``scope``."""
    row = conn.execute(SELECT_EQUIPMENT_IN_SCOPE, {"scope": scope, "code": code}).fetchone()
    return None if row is None else (int(row["id"]), row["category"])


def latest_values(conn: psycopg.Connection[DictRow], *, equipment_id: int, category: str) -> list[dict[str, Any]]:
    return conn.execute(LATEST_VALUES_BY_CATEGORY[category], {"equipment_id": equipment_id}).fetchall()


def recent_events(conn: psycopg.Connection[DictRow], *, equipment_id: int) -> list[dict[str, Any]]:
    return conn.execute(SELECT_RECENT_EVENTS, {"equipment_id": equipment_id}).fetchall()
