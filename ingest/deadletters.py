"""Re-processing dead letters once their cause is fixed (equipment registered, binding corrected …).

Used by the API (POST /api/v1/deadletters/reprocess) and the CLI (`safewatch deadletters
reprocess`); each selects and locks the rows it may touch, then calls `reprocess` inside its own
transaction. A dead letter is decoded again with the ingest's own `assemble`, its time checks
judged against when it was first received; what is valid now is written (idempotently), what
still fails becomes a new dead letter pointing back to the old one (``retry_of``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg

from ingest.batching import Batch, Bound, RawMessage, bind, codes_of, decode
from ingest.registry_cache import SELECT_BOUND_EQUIPMENT
from ingest.writer import create_staging, dead_letter_params, write_batch
from safewatch.contract import Limits
from safewatch.db import storage_of
from safewatch.settings import IngestSettings

log = logging.getLogger(__name__)

INSERT_RETRY_DEAD_LETTER = """
INSERT INTO dead_letters (topic, gateway_id, equipment_code, reason, detail, payload, retry_of)
VALUES (%s, %s, %s, %s, %s, %s, %s)
"""
MARK_REPROCESSED = """
UPDATE dead_letters SET reprocessed_at = now(), reprocessed_by = %s, reprocess_result = %s WHERE id = %s
"""


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """A stored dead letter, as selected (and locked) for re-processing."""

    id: int
    topic: str
    payload: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """What re-processing one dead letter did."""

    id: int
    result: str  # 'stored' | 'failed_again'
    readings_stored: int
    reasons: tuple[str, ...]  # why it failed again (empty when stored)


def as_message(topic: str, payload: bytes) -> RawMessage:
    """The message to decode again (pure).

    Dead letters of a single reading entry hold the entry ({equipment, ts, values}), not the whole
    message: wrap it back into a telemetry message so the same decoder applies.
    """
    if topic.endswith("/telemetry"):
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return RawMessage(topic, payload)
        if isinstance(doc, dict) and "readings" not in doc and "values" in doc:
            return RawMessage(topic, orjson.dumps({"readings": [doc]}))
    return RawMessage(topic, payload)


def reprocess(conn: psycopg.Connection[Any], rows: Sequence[DeadLetterRow], *, actor: str,
              cfg: IngestSettings) -> list[Outcome]:
    """Re-run ``rows`` through the ingest and record the outcome, inside the caller's transaction."""
    create_staging(conn)
    mark_rollups = storage_of(conn) == "plain"
    outcomes = []
    for row in rows:
        limits = Limits(int(row.received_at.timestamp() * 1000), cfg.max_future_s * 1000, cfg.max_past_s * 1000,
                        cfg.max_payload_bytes)
        decoded = decode([as_message(row.topic, bytes(row.payload))], limits)
        registry = {}
        for rec in conn.execute(SELECT_BOUND_EQUIPMENT, (list(codes_of(decoded)),)).fetchall():
            code, eq_id, gateway_id, category = rec.values() if isinstance(rec, dict) else rec
            registry[code] = Bound(eq_id, gateway_id, category)
        batch = bind(decoded, registry, limits)
        stored = write_batch(conn, Batch(batch.readings, batch.events, batch.statuses), mark_rollups=mark_rollups)
        if batch.dead_letters:  # every text storable, as the ingest's own dead letters
            topics, gateways, codes, reasons, details, payloads, _ = dead_letter_params(batch.dead_letters)
            for params in zip(topics, gateways, codes, reasons, details, payloads, strict=True):
                conn.execute(INSERT_RETRY_DEAD_LETTER, (*params, row.id))
        result = "failed_again" if batch.dead_letters else "stored"
        conn.execute(MARK_REPROCESSED, (actor, result, row.id))
        outcomes.append(Outcome(row.id, result, stored, tuple(sorted({d.reason for d in batch.dead_letters}))))
    log.info("reprocessed dead letters", extra={"actor": actor, "count": len(outcomes),
                                                "stored": sum(o.result == "stored" for o in outcomes)})
    return outcomes


def rows_from(records: Iterable[dict[str, Any] | tuple[Any, ...]]) -> list[DeadLetterRow]:
    """DeadLetterRow from dict rows (the API's pool) or tuples (id, topic, payload, received_at)."""
    out = []
    for r in records:
        if isinstance(r, dict):
            out.append(DeadLetterRow(r["id"], r["topic"], r["payload"], r["received_at"]))
        else:
            out.append(DeadLetterRow(*r))
    return out


# The CLI runs on the server as an operator: no jurisdiction filter.
SELECT_FOR_LIST = """
SELECT id, received_at, reason, gateway_id, equipment_code, detail, reprocess_result FROM dead_letters
WHERE (%(reason)s::text IS NULL OR reason = %(reason)s) AND (%(gateway)s::text IS NULL OR gateway_id = %(gateway)s)
  AND (NOT %(pending)s OR reprocessed_at IS NULL)
ORDER BY id DESC LIMIT %(limit)s
"""
SELECT_FOR_REPROCESS = """
SELECT id, topic, payload, received_at FROM dead_letters
WHERE reprocessed_at IS NULL
  AND (cardinality(%(ids)s::bigint[]) = 0 OR id = ANY(%(ids)s))
  AND (%(reason)s::text IS NULL OR reason = %(reason)s) AND (%(gateway)s::text IS NULL OR gateway_id = %(gateway)s)
ORDER BY id LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""
