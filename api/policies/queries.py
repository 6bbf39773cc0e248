"""SQL of escalation policies."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow

_COLUMNS = ("id, severity, category, open_levels, max_level, banner_ack_s, league_ack_s, renotify_s, updated_at, "
            "updated_by")
SELECT_POLICIES = f"SELECT {_COLUMNS} FROM escalation_policies ORDER BY array_position(ARRAY['critical', 'major', " \
                  f"'minor', 'warning'], severity), category NULLS FIRST"
SELECT_POLICY = f"SELECT {_COLUMNS} FROM escalation_policies WHERE id = %s"
INSERT_POLICY = f"""
INSERT INTO escalation_policies (severity, category, open_levels, max_level, banner_ack_s, league_ack_s, renotify_s,
                                 updated_by)
VALUES (%(severity)s, %(category)s, %(open_levels)s, %(max_level)s, %(banner_ack_s)s, %(league_ack_s)s,
        %(renotify_s)s, %(actor)s)
RETURNING {_COLUMNS}
"""
UPDATE_POLICY = f"""
UPDATE escalation_policies SET severity = %(severity)s, category = %(category)s, open_levels = %(open_levels)s,
    max_level = %(max_level)s, banner_ack_s = %(banner_ack_s)s, league_ack_s = %(league_ack_s)s,
    renotify_s = %(renotify_s)s, updated_at = now(), updated_by = %(actor)s
WHERE id = %(id)s
RETURNING {_COLUMNS}
"""
DELETE_POLICY = "DELETE FROM escalation_policies WHERE id = %s"


def list_policies(conn: psycopg.Connection[DictRow]) -> list[dict[str, Any]]:
    return conn.execute(SELECT_POLICIES).fetchall()


def get_policy(conn: psycopg.Connection[DictRow], policy_id: int) -> dict[str, Any] | None:
    return conn.execute(SELECT_POLICY, (policy_id,)).fetchone()


def insert_policy(conn: psycopg.Connection[DictRow], **params: Any) -> dict[str, Any]:
    row = conn.execute(INSERT_POLICY, params).fetchone()
    assert row is not None
    return row


def update_policy(conn: psycopg.Connection[DictRow], **params: Any) -> dict[str, Any] | None:
    return conn.execute(UPDATE_POLICY, params).fetchone()


def delete_policy(conn: psycopg.Connection[DictRow], policy_id: int) -> None:
    conn.execute(DELETE_POLICY, (policy_id,))
