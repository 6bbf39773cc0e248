"""The audit trail of registry records other than equipment (units, gateways, people): who, when, what."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
from psycopg.rows import DictRow

INSERT_REGISTRY_AUDIT = "INSERT INTO registry_audit (entity, key, actor, action, changes) VALUES (%s, %s, %s, %s, %s)"


def record_change(conn: psycopg.Connection[DictRow], entity: str, key: str, actor: str, action: str,
                  what: dict[str, Any]) -> None:
    """One audit row in the caller's transaction (``entity``: 'unit', 'gateway' or 'user')."""
    conn.execute(INSERT_REGISTRY_AUDIT, (entity, key, actor, action, orjson.dumps(what, default=str).decode()))
