"""SQL of the dead-letters domain.

A dead letter belongs to the division of its equipment (when registered) or else of its gateway's
league; ones that name neither (a bad topic, an unknown gateway) are seen at region level only.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow

from api.deps import IN_SCOPE

_FROM = """
FROM dead_letters dl
LEFT JOIN equipment e ON e.code = dl.equipment_code
LEFT JOIN gateways g ON g.id = dl.gateway_id
LEFT JOIN divisions d ON d.code = COALESCE(e.banner_code, g.league_code)
"""
_SCOPED = f"""
(({IN_SCOPE}) OR (d.code IS NULL AND EXISTS (
    SELECT 1 FROM divisions r WHERE r.code = %(scope)s AND r.level = 'region')))
"""
_COLUMNS = """
dl.id, dl.received_at, dl.topic, dl.gateway_id, dl.equipment_code, dl.reason, dl.detail,
substring(dl.payload FROM 1 FOR %(cut)s) AS payload_raw, length(dl.payload) AS payload_bytes,
dl.reprocessed_at, dl.reprocessed_by, dl.reprocess_result, dl.retry_of
"""
SELECT_DEAD_LETTER_PAGE = f"""
SELECT {_COLUMNS} {_FROM}
WHERE {_SCOPED}
  AND (%(reason)s::text IS NULL OR dl.reason = %(reason)s)
  AND (%(gateway)s::text IS NULL OR dl.gateway_id = %(gateway)s)
  AND (%(pending)s::boolean IS NULL OR (dl.reprocessed_at IS NULL) = %(pending)s)
  AND (%(before)s::bigint IS NULL OR dl.id < %(before)s)
ORDER BY dl.id DESC
LIMIT %(limit)s
"""
SELECT_DEAD_LETTER = f"SELECT {_COLUMNS} {_FROM} WHERE {_SCOPED} AND dl.id = %(id)s"
# Rows to re-run, locked; SKIP LOCKED so two operators re-running at once never run one twice.
SELECT_FOR_REPROCESS = f"""
SELECT dl.id, dl.topic, dl.payload, dl.received_at {_FROM}
WHERE {_SCOPED} AND dl.reprocessed_at IS NULL
  AND (cardinality(%(ids)s::bigint[]) = 0 OR dl.id = ANY(%(ids)s))
  AND (%(reason)s::text IS NULL OR dl.reason = %(reason)s)
  AND (%(gateway)s::text IS NULL OR dl.gateway_id = %(gateway)s)
ORDER BY dl.id
LIMIT %(limit)s
FOR UPDATE OF dl SKIP LOCKED
"""
LIST_CUT = 4096
WHOLE = 2**31 - 1


def _text(row: dict[str, Any]) -> dict[str, Any]:
    raw = row.pop("payload_raw")
    row["payload"] = bytes(raw).decode("utf-8", "replace")
    return row


def list_dead_letters(conn: psycopg.Connection[DictRow], **params: Any) -> list[dict[str, Any]]:
    return [_text(r) for r in conn.execute(SELECT_DEAD_LETTER_PAGE, {**params, "cut": LIST_CUT}).fetchall()]


def get_dead_letter(conn: psycopg.Connection[DictRow], *, scope: str, dead_letter_id: int) -> dict[str, Any] | None:
    row = conn.execute(SELECT_DEAD_LETTER, {"scope": scope, "id": dead_letter_id, "cut": WHOLE}).fetchone()
    return _text(row) if row else None


def lock_for_reprocess(conn: psycopg.Connection[DictRow], **params: Any) -> list[dict[str, Any]]:
    return conn.execute(SELECT_FOR_REPROCESS, params).fetchall()
