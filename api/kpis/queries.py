"""SQL of the alarm-load KPIs: one pass per measure over the caller's jurisdiction, grouped per division."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import DictRow

# ``g`` is the group a division row d falls in: its league, or the banner itself.
_GROUP = "CASE WHEN %(group)s = 'league' THEN coalesce(d.league_code, d.code) ELSE d.code END"
_SCOPE = "(d.code = %(scope)s OR d.league_code = %(scope)s OR d.region_code = %(scope)s)"
_FILTER = "(%(division)s::text IS NULL OR d.code = %(division)s OR d.league_code = %(division)s)"

SELECT_COUNTS = f"""
WITH w AS (
    SELECT {_GROUP} AS g, a.id, a.opened_at, a.chattering,
           EXISTS (SELECT 1 FROM alert_transitions t
                   WHERE t.alert_id = a.id AND t.from_state IS NULL AND t.to_state = 'active_unack') AS shown
    FROM alerts a JOIN divisions d ON d.code = a.division_code
    WHERE a.opened_at >= %(since)s AND a.opened_at < %(until)s AND {_SCOPE} AND {_FILTER}
), peaks AS (
    SELECT g, max(n) AS peak FROM (
        SELECT g, count(*) AS n FROM w WHERE shown
        GROUP BY g, date_bin('10 minutes', opened_at, timestamptz '2000-01-01')) x
    GROUP BY g
)
SELECT w.g, count(*) AS alerts, count(*) FILTER (WHERE shown) AS annunciated,
       count(*) FILTER (WHERE chattering) AS chattering, coalesce(max(p.peak), 0) AS peak_10min
FROM w LEFT JOIN peaks p ON p.g = w.g
GROUP BY w.g
"""
SELECT_NOW = f"""
SELECT {_GROUP} AS g,
       count(*) FILTER (WHERE a.state IN ('active_unack', 'active_ack', 'returned_unack')) AS standing,
       count(*) FILTER (WHERE a.active AND a.state IN ('active_unack', 'active_ack')
                        AND a.opened_at < %(until)s - %(stale_hours)s * interval '1 hour') AS stale,
       count(*) FILTER (WHERE a.state = 'shelved') AS shelved
FROM alerts a JOIN divisions d ON d.code = a.division_code
WHERE a.closed_at IS NULL AND {_SCOPE} AND {_FILTER}
GROUP BY 1
"""
SELECT_FLOODS = f"""
SELECT {_GROUP} AS g, count(*) AS floods,
       coalesce(sum(extract(epoch FROM least(coalesce(f.ended_at, %(until)s), %(until)s) - f.started_at)) / 60, 0)
           AS flood_minutes
FROM alert_floods f JOIN divisions d ON d.code = f.division_code
WHERE f.started_at >= %(since)s AND f.started_at < %(until)s AND {_SCOPE} AND {_FILTER}
GROUP BY 1
"""
SELECT_TOP_RULES = f"""
SELECT g, rule_key, n AS count, equipment FROM (
    SELECT {_GROUP} AS g, a.rule_key, count(*) AS n, count(DISTINCT a.equipment_id) AS equipment,
           row_number() OVER (PARTITION BY {_GROUP} ORDER BY count(*) DESC, a.rule_key) AS rank
    FROM alerts a JOIN divisions d ON d.code = a.division_code
    WHERE a.opened_at >= %(since)s AND a.opened_at < %(until)s AND {_SCOPE} AND {_FILTER}
    GROUP BY 1, 2) x
WHERE rank <= 10
ORDER BY g, count DESC, rule_key
"""
SELECT_TOP_RULES_ALL = f"""
SELECT a.rule_key, count(*) AS count, count(DISTINCT a.equipment_id) AS equipment
FROM alerts a JOIN divisions d ON d.code = a.division_code
WHERE a.opened_at >= %(since)s AND a.opened_at < %(until)s AND {_SCOPE} AND {_FILTER}
GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10
"""
SELECT_LEVEL = "SELECT level FROM divisions WHERE code = %s"


def division_level(conn: psycopg.Connection[DictRow], code: str) -> str | None:
    row = conn.execute(SELECT_LEVEL, (code,)).fetchone()
    return None if row is None else row["level"]


def kpi_rows(conn: psycopg.Connection[DictRow], *, scope: str, division: str | None, group: str, since: datetime,
             until: datetime, stale_hours: float) -> dict[str, list[dict[str, Any]]]:
    """The rows of every measure, keyed by measure name."""
    params = {"scope": scope, "division": division, "group": group, "since": since, "until": until,
              "stale_hours": stale_hours}
    return {name: conn.execute(sql, params).fetchall() for name, sql in (
        ("counts", SELECT_COUNTS), ("now", SELECT_NOW), ("floods", SELECT_FLOODS), ("top", SELECT_TOP_RULES),
        ("top_all", SELECT_TOP_RULES_ALL))}
