"""SQL of response times (over the ``alert_responses`` view of migration 023)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow

from api.deps import IN_SCOPE

SELECT_RECORD = f"""
SELECT r.alert_id, r.severity, r.category, r.rule_key, r.level, r.division_code, r.league_code, r.opened_at,
       r.first_notified_at, r.acknowledged_at, r.resolved_at, clock_timestamp() AS now
FROM alert_responses r JOIN divisions d ON d.code = r.division_code
WHERE {IN_SCOPE} AND r.alert_id = %(id)s
"""
SELECT_ESCALATIONS = """
SELECT at, from_level, to_level, notified_levels, actor, reason FROM alert_escalations WHERE alert_id = %s ORDER BY id
"""
_SECONDS_TO_ACK = "extract(epoch FROM r.acknowledged_at - r.opened_at)"
_SECONDS_TO_NOTIFY = "extract(epoch FROM r.first_notified_at - r.opened_at)"
SELECT_STATS = f"""
SELECT CASE WHEN %(group_by)s = 'league' THEN r.league_code ELSE r.division_code END AS division_code,
       count(*) AS alerts,
       count(r.first_notified_at) AS notified,
       count(r.acknowledged_at) AS acknowledged,
       count(*) FILTER (WHERE {_SECONDS_TO_ACK} <= %(within)s) AS acknowledged_within,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY {_SECONDS_TO_ACK}) AS median_seconds_to_acknowledge,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY {_SECONDS_TO_ACK}) AS p90_seconds_to_acknowledge,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY {_SECONDS_TO_NOTIFY}) AS median_seconds_to_first_notification,
       count(r.resolved_at) AS resolved,
       count(*) FILTER (WHERE r.level IN ('league', 'region')) AS reached_league,
       count(*) FILTER (WHERE r.level = 'region') AS reached_region
FROM alert_responses r JOIN divisions d ON d.code = r.division_code
WHERE {IN_SCOPE}
  AND (%(division)s::text IS NULL OR d.code = %(division)s OR d.league_code = %(division)s
       OR d.region_code = %(division)s)
  AND (%(severity)s::text IS NULL OR r.severity = %(severity)s)
  AND (%(category)s::text IS NULL OR r.category = %(category)s)
  AND (%(rule_key)s::text IS NULL OR r.rule_key = %(rule_key)s)
  AND (%(since)s::timestamptz IS NULL OR r.opened_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR r.opened_at < %(until)s)
GROUP BY 1
ORDER BY 1
"""


def get_record(conn: psycopg.Connection[DictRow], *, scope: str, alert_id: int) -> dict[str, Any] | None:
    return conn.execute(SELECT_RECORD, {"scope": scope, "id": alert_id}).fetchone()


def escalations_of(conn: psycopg.Connection[DictRow], alert_id: int) -> list[dict[str, Any]]:
    return conn.execute(SELECT_ESCALATIONS, (alert_id,)).fetchall()


def stats(conn: psycopg.Connection[DictRow], **params: Any) -> list[dict[str, Any]]:
    return conn.execute(SELECT_STATS, params).fetchall()
