"""Write one assembled batch in one transaction: readings by binary COPY into the wide tables, idempotently."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import psycopg
from psycopg import sql

from ingest.batching import Batch
from ingest.copy_format import pack_nullable, timestamptz_from_ms
from ingest.pivot import WideRows, pivot
from safewatch.db import storage_of
from safewatch.schema.layout import READING_TABLES, ReadingTable

# Readings go to their category's wide table (safewatch/schema/layout.py), one row per equipment and
# instant. Fast path: binary COPY straight into the table, inside a savepoint. COPY cannot skip keys
# already stored, so when a batch holds a redelivered reading the COPY fails on the primary key, the
# savepoint is rolled back, and that table's rows go the slow way: the same COPY into a per-connection
# staging table, then one upsert that fills only the columns still NULL (the first value stored
# stays), and skips rows it would not change, so a redelivered message stores nothing twice.
# Redeliveries are rare (after a crash or a reconnect); bench/ingest prints both paths' rates.
COPY_INTO = "COPY {table} (time, equipment_id, {columns}) FROM STDIN (FORMAT BINARY)"
CREATE_STAGING = "CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table}) ON COMMIT DELETE ROWS"
# `fresh` counts the values this adds (the statement's snapshot is taken before `merged` writes).
MERGE_FROM_STAGING = """
WITH fresh AS (
    SELECT {added} AS n FROM {staging} s LEFT JOIN {table} t USING (equipment_id, time)
), merged AS (
    INSERT INTO {table} AS t SELECT * FROM {staging}
    ON CONFLICT (equipment_id, time) DO UPDATE SET {keep_stored}
    WHERE {fills_a_gap}
)
SELECT coalesce(sum(n), 0)::bigint FROM fresh
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


@dataclass(frozen=True, slots=True)
class _TableStatements:
    copy: sql.Composed
    copy_staging: sql.Composed
    create_staging: sql.Composed
    merge: sql.Composed


def _statements(table: ReadingTable) -> _TableStatements:
    """The statements above, for one readings table and its columns."""
    name, staging = sql.Identifier(table.name), sql.Identifier(f"staging_{table.name}")
    cols = [sql.Identifier(c) for c in table.columns]
    columns = sql.SQL(", ").join(cols)
    return _TableStatements(
        copy=sql.SQL(COPY_INTO).format(table=name, columns=columns),
        copy_staging=sql.SQL(COPY_INTO).format(table=staging, columns=columns),
        create_staging=sql.SQL(CREATE_STAGING).format(staging=staging, table=name),
        merge=sql.SQL(MERGE_FROM_STAGING).format(
            table=name, staging=staging,
            added=sql.SQL(" + ").join(sql.SQL("(t.{0} IS NULL AND s.{0} IS NOT NULL)::int").format(c) for c in cols),
            keep_stored=sql.SQL(", ").join(sql.SQL("{0} = coalesce(t.{0}, EXCLUDED.{0})").format(c) for c in cols),
            fills_a_gap=sql.SQL(" OR ").join(sql.SQL("(t.{0} IS NULL AND EXCLUDED.{0} IS NOT NULL)").format(c)
                                             for c in cols)))


STATEMENTS: dict[str, _TableStatements] = {t.name: _statements(t) for t in READING_TABLES}


def create_staging(conn: psycopg.Connection) -> None:
    """The slow path's staging tables (temporary: once per connection), in the caller's transaction."""
    for statements in STATEMENTS.values():
        conn.execute(statements.create_staging)


def prepare(conn: psycopg.Connection) -> bool:
    """Per-connection set-up; call once after connecting. True when the service maintains rollups."""
    create_staging(conn)
    plain = storage_of(conn) == "plain"
    conn.commit()
    return plain


def write_batch(conn: psycopg.Connection, batch: Batch, *, mark_rollups: bool = False) -> int:
    """Write everything in ``batch`` and commit; return the number of readings newly stored."""
    stored = 0
    with conn.transaction(), conn.cursor() as cur:
        if batch.readings:
            for rows in pivot(batch.readings):
                stored += _write_rows(conn, cur, rows)
            if mark_rollups:
                cur.execute(MARK_ROLLUP_MINUTES, (sorted({t // 60_000 for t in set(batch.readings.ts_ms)}),))
        if batch.events:
            cur.executemany(INSERT_EVENT, [(e.ts_ms, e.equipment_id, e.type, e.active, e.gateway_id,
                                            orjson.dumps(e.details).decode()) for e in batch.events])
        if batch.statuses:
            cur.executemany(UPSERT_GATEWAY_STATUS, [(s.gateway_id, s.state, s.ts_ms) for s in batch.statuses])
        if batch.dead_letters:
            cur.executemany(INSERT_DEAD_LETTER, [(d.topic, d.gateway_id, d.equipment_code, d.reason, d.detail,
                                                  d.payload) for d in batch.dead_letters])
    return stored


def _write_rows(conn: psycopg.Connection, cur: psycopg.Cursor, rows: WideRows) -> int:
    stream = _stream(rows)
    try:
        with conn.transaction(), cur.copy(STATEMENTS[rows.table.name].copy) as copy:
            copy.write(stream)
        return rows.readings
    except psycopg.errors.UniqueViolation:
        return _merge_rows(cur, rows, stream)


def _stream(rows: WideRows) -> bytes:
    return pack_nullable([("timestamptz", timestamptz_from_ms(rows.ts_ms)), ("int4", rows.equipment_ids)],
                         rows.values)


def _merge_rows(cur: psycopg.Cursor, rows: WideRows, stream: bytes | None = None) -> int:
    """The slow path: stage the rows, fill what is still missing; the number of values added."""
    statements = STATEMENTS[rows.table.name]
    with cur.copy(statements.copy_staging) as copy:
        copy.write(stream if stream is not None else _stream(rows))
    cur.execute(statements.merge)
    row = cur.fetchone()
    return int(row[0]) if row else 0


def ensure_partitions(conn: psycopg.Connection, now: datetime | None = None, days_ahead: int = 7) -> int:
    """Create the daily reading partitions around ``now`` (a no-op on TimescaleDB)."""
    now = now or datetime.now(UTC)
    from_day = now.date().fromordinal(now.date().toordinal() - 1)
    to_day = now.date().fromordinal(now.date().toordinal() + days_ahead)
    with conn.transaction():
        row = conn.execute(ENSURE_PARTITIONS, (from_day, to_day)).fetchone()
    return int(row[0]) if row else 0
