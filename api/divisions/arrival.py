"""Trapped-passenger arrival deadlines per division (migration 025): the SQL that resolves and sets them.

A division's own ``arrival_deadline_min`` wins; NULL inherits from its league, then its region. The
effective value is resolved in the queries that read alerts, so a change applies to open alerts at once.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow

from api.deps import IN_SCOPE

TRAPPED_RULE_KEY = "event.passenger_trapped"

# Minutes the maintenance unit has to reach a trapped passenger in division row ``d``.
EFFECTIVE_DEADLINE_MIN = """coalesce(d.arrival_deadline_min,
    (SELECT l.arrival_deadline_min FROM divisions l WHERE l.code = d.league_code),
    (SELECT r.arrival_deadline_min FROM divisions r WHERE r.code = d.region_code))"""
# When the unit must have arrived for alert ``a`` in division ``d``; NULL for any other rule.
ARRIVAL_DEADLINE_AT = f"""CASE WHEN a.rule_key = '{TRAPPED_RULE_KEY}'
    THEN a.opened_at + make_interval(mins => {EFFECTIVE_DEADLINE_MIN}) END"""

# Where the effective value comes from: the nearest of the division, its league, its region that sets one.
SELECT_RESPONSE = f"""
SELECT d.code, d.name, d.level, d.arrival_deadline_min, {EFFECTIVE_DEADLINE_MIN} AS effective_arrival_deadline_min,
       CASE WHEN d.arrival_deadline_min IS NOT NULL THEN d.code
            WHEN (SELECT l.arrival_deadline_min FROM divisions l WHERE l.code = d.league_code) IS NOT NULL
                THEN d.league_code
            WHEN (SELECT r.arrival_deadline_min FROM divisions r WHERE r.code = d.region_code) IS NOT NULL
                THEN d.region_code
       END AS effective_from,
       d.arrival_deadline_updated_by AS updated_by, d.arrival_deadline_updated_at AS updated_at
FROM divisions d
WHERE {IN_SCOPE} AND d.code = %(code)s
"""
UPDATE_DEADLINE = """
UPDATE divisions SET arrival_deadline_min = %(minutes)s, arrival_deadline_updated_by = %(actor)s,
                     arrival_deadline_updated_at = now()
WHERE code = %(code)s
"""


def division_response(conn: psycopg.Connection[DictRow], *, scope: str, code: str) -> dict[str, Any] | None:
    return conn.execute(SELECT_RESPONSE, {"scope": scope, "code": code}).fetchone()


def set_arrival_deadline(conn: psycopg.Connection[DictRow], *, code: str, minutes: int | None, actor: str) -> None:
    conn.execute(UPDATE_DEADLINE, {"code": code, "minutes": minutes, "actor": actor})
