"""Write one assembled batch in one transaction: readings by binary COPY, idempotently."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import psycopg

from ingest.batching import Batch, Readings
from ingest.copy_format import pack, timestamptz_from_ms
from safewatch.db import storage_of

# Fast path: binary COPY straight into readings, inside a savepoint. COPY cannot skip duplicates, so
# when a batch holds a redelivered reading the COPY fails on the primary key, the savepoint is rolled
# back, and the batch goes the slow way: a per-connection staging table, then INSERT … ON CONFLICT DO
# NOTHING, so a redelivered message inserts nothing twice. Redeliveries are rare (after a crash or a
# reconnect), and the fast path is the faster one (bench/ingest prints both; docs/decisions.md).
COPY_READINGS = "COPY readings (time, equipment_id, metric_id, value) FROM STDIN (FORMAT BINARY)"
CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS staging_readings (
    equipment_id integer, metric_id smallint, ts_ms bigint, value double precision
) ON COMMIT DELETE ROWS
"""
COPY_STAGING = "COPY staging_readings (equipment_id, metric_id, ts_ms, value) FROM STDIN (FORMAT BINARY)"
INSERT_READINGS_FROM_STAGING = """
INSERT INTO readings (time, equipment_id, metric_id, value)
SELECT timestamptz 'epoch' + ts_ms * interval '1 millisecond', equipment_id, metric_id, value
FROM staging_readings
ON CONFLICT DO NOTHING
"""
# Plain PostgreSQL only: mark the minutes this batch touched, for safewatch_refresh_rollups(). Updating
# our own mark (one row per minute and session) holds it locked until commit, so a concurrent refresh
# waits for this batch instead of missing it; TimescaleDB's continuous aggregates track this themselves.
MARK_ROLLUP_MINUTES = """
INSERT INTO rollup_dirty (bucket, backend)
SELECT timestamptz 'epoch' + m * interval '1 minute', pg_backend_pid() FROM unnest(%s::bigint[]) AS m
ON CONFLICT (bucket, backend) DO UPDATE SET marked_at = now()
"""
INSERT_EVENT = """
INSERT INTO events (time, equipment_id, type, active, gateway_id, details)
VALUES (timestamptz 'epoch' + %s * interval '1 millisecond', %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
UPSERT_GATEWAY_STATUS = """
INSERT INTO gateway_status (gateway_id, state, since)
VALUES (%s, %s, timestamptz 'epoch' + %s * interval '1 millisecond')
ON CONFLICT (gateway_id) DO UPDATE SET state = EXCLUDED.state, since = EXCLUDED.since, updated_at = now()
WHERE gateway_status.since <= EXCLUDED.since
"""
INSERT_DEAD_LETTER = """
INSERT INTO dead_letters (topic, gateway_id, equipment_code, reason, detail, payload)
VALUES (%s, %s, %s, %s, %s, %s)
"""
ENSURE_PARTITIONS = "SELECT safewatch_ensure_partitions(%s::date, %s::date)"


def prepare(conn: psycopg.Connection) -> bool:
    """Per-connection set-up; call once after connecting. True when the service maintains rollups."""
    conn.execute(CREATE_STAGING)
    plain = storage_of(conn) == "plain"
    conn.commit()
    return plain


def write_batch(conn: psycopg.Connection, batch: Batch, *, mark_rollups: bool = False) -> int:
    """Write everything in ``batch`` and commit; return the number of readings newly stored."""
    stored = 0
    with conn.transaction(), conn.cursor() as cur:
        if batch.readings:
            r = batch.readings
            try:
                with conn.transaction(), cur.copy(COPY_READINGS) as copy:
                    copy.write(pack([("timestamptz", timestamptz_from_ms(r.ts_ms)), ("int4", r.equipment_ids),
                                     ("int2", r.metric_ids), ("float8", r.values)]))
                stored = len(r)
            except psycopg.errors.UniqueViolation:
                stored = _insert_skipping_duplicates(cur, r)
            if mark_rollups:
                cur.execute(MARK_ROLLUP_MINUTES, (sorted({t // 60_000 for t in set(r.ts_ms)}),))
        if batch.events:
            cur.executemany(INSERT_EVENT, [(e.ts_ms, e.equipment_id, e.type, e.active, e.gateway_id,
                                            orjson.dumps(e.details).decode()) for e in batch.events])
        if batch.statuses:
            cur.executemany(UPSERT_GATEWAY_STATUS, [(s.gateway_id, s.state, s.ts_ms) for s in batch.statuses])
        if batch.dead_letters:
            cur.executemany(INSERT_DEAD_LETTER, [(d.topic, d.gateway_id, d.equipment_code, d.reason, d.detail,
                                                  d.payload) for d in batch.dead_letters])
    return stored


def _insert_skipping_duplicates(cur: psycopg.Cursor, r: Readings) -> int:
    with cur.copy(COPY_STAGING) as copy:
        copy.write(pack([("int4", r.equipment_ids), ("int2", r.metric_ids), ("int8", r.ts_ms), ("float8", r.values)]))
    cur.execute(INSERT_READINGS_FROM_STAGING)
    return cur.rowcount


def ensure_partitions(conn: psycopg.Connection, now: datetime | None = None, days_ahead: int = 7) -> int:
    """Create the daily reading partitions around ``now`` (a no-op on TimescaleDB)."""
    now = now or datetime.now(UTC)
    from_day = now.date().fromordinal(now.date().toordinal() - 1)
    to_day = now.date().fromordinal(now.date().toordinal() + days_ahead)
    with conn.transaction():
        row = conn.execute(ENSURE_PARTITIONS, (from_day, to_day)).fetchone()
    return int(row[0]) if row else 0
