"""Write one assembled batch in one transaction: readings by binary COPY into the wide tables, idempotently."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import orjson
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from ingest.batching import Batch, DeadLetter, dead_letter_key
from ingest.copy_format import pack_nullable, timestamptz_from_ms
from ingest.pivot import WideRows, pivot
from safewatch.contract import storable_text
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
# A gateway's state follows the gateway's own order (docs/mqtt-contract.md, "Gateway status"):
# - a status without ts (the last will) is placed by arrival: it replaces what was received before it,
#   never what was received after (batches commit in any order; the broker sends a will before the
#   reconnected gateway's online), and it keeps the gateway time it ended (gateway_ts);
# - a timed status over a timed one: the gateway's times compare, as they always did;
# - a timed status over a last will: it wins only when stamped after the newest status the will ended,
#   in the gateway's own clock, so a gateway whose clock lags ours is still seen online again, and an
#   old online redelivered after the will does not undo it.
# A last will repeated (it is retained: every ingest start receives it again) keeps the time it began.
UPSERT_GATEWAY_STATUS = """
INSERT INTO gateway_status AS s (gateway_id, state, since, gateway_ts, heard_at, timed)
SELECT %(gateway)s, %(state)s, coalesce(v.ts, v.heard), v.ts, v.heard, v.ts IS NOT NULL
FROM (SELECT timestamptz 'epoch' + %(ts)s::bigint * interval '1 millisecond' AS ts,
             timestamptz 'epoch' + %(heard)s::bigint * interval '1 millisecond' AS heard) v
ON CONFLICT (gateway_id) DO UPDATE SET
    state = EXCLUDED.state,
    since = CASE WHEN NOT EXCLUDED.timed AND NOT s.timed AND s.state = EXCLUDED.state THEN s.since
                 ELSE EXCLUDED.since END,
    gateway_ts = coalesce(EXCLUDED.gateway_ts, s.gateway_ts, CASE WHEN s.timed THEN s.since END),
    heard_at = EXCLUDED.heard_at, timed = EXCLUDED.timed, updated_at = now()
WHERE CASE WHEN NOT EXCLUDED.timed THEN s.heard_at <= EXCLUDED.heard_at
           WHEN s.timed THEN s.since <= EXCLUDED.since
           ELSE EXCLUDED.gateway_ts > coalesce(s.gateway_ts, '-infinity') END
"""
# One dead letter a message, stored once: a redelivery finds its key taken and adds nothing. Only the
# rows inserted come back, and only they are counted. Every text is made storable first (storable_text);
# the payloads go in binary (%b), not hex-escaped text twice their size.
INSERT_DEAD_LETTERS = """
INSERT INTO dead_letters (topic, gateway_id, equipment_code, reason, detail, payload, message_key)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %b::bytea[], %b::bytea[])
ON CONFLICT (message_key) WHERE message_key IS NOT NULL DO NOTHING
RETURNING message_key
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


class Written(NamedTuple):
    """What one batch's transaction stored."""

    readings: int  # readings newly stored
    dead_letters: list[DeadLetter]  # dead letters newly stored (a redelivered one is not)


def write_batch(conn: psycopg.Connection, batch: Batch, *, mark_rollups: bool = False) -> int:
    """Write everything in ``batch`` and commit; return the number of readings newly stored."""
    return write_counted(conn, batch, mark_rollups=mark_rollups).readings


def dead_letter_params(letters: list[DeadLetter]) -> tuple[list[str], list[str | None], list[str | None],
                                                           list[str], list[str], list[bytes], list[bytes]]:
    """The columns of ``letters``, every text storable whatever the message held (pure)."""
    def text(value: str | None, limit: int) -> str | None:
        return None if value is None else storable_text(value, limit)

    return ([storable_text(d.topic, 1024) for d in letters], [text(d.gateway_id, 128) for d in letters],
            [text(d.equipment_code, 64) for d in letters], [storable_text(d.reason, 64) for d in letters],
            [storable_text(d.detail, 8192) for d in letters], [d.payload for d in letters],
            [dead_letter_key(d.topic, d.payload) for d in letters])


def write_counted(conn: psycopg.Connection, batch: Batch, *, mark_rollups: bool = False) -> Written:
    """Write everything in ``batch`` and commit; what was newly stored."""
    stored = 0
    letters: list[DeadLetter] = []
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:  # tuples also on the API's dict-row pool
        if batch.readings:
            for rows in pivot(batch.readings):
                stored += _write_rows(conn, cur, rows)
            if mark_rollups:
                cur.execute(MARK_ROLLUP_MINUTES, (sorted({t // 60_000 for t in set(batch.readings.ts_ms)}),))
        if batch.events:
            cur.executemany(INSERT_EVENT, [(e.ts_ms, e.equipment_id, e.type, e.active, e.gateway_id,
                                            orjson.dumps(e.details).decode()) for e in batch.events])
        if batch.statuses:
            cur.executemany(UPSERT_GATEWAY_STATUS, [{"gateway": s.gateway_id, "state": s.state, "ts": s.ts_ms,
                                                     "heard": s.heard_ms} for s in batch.statuses])
        if batch.dead_letters:
            params = dead_letter_params(batch.dead_letters)
            cur.execute(INSERT_DEAD_LETTERS, params)
            inserted = {bytes(row[0]) for row in cur.fetchall()}
            seen: set[bytes] = set()
            for d, key in zip(batch.dead_letters, params[-1], strict=True):
                if key in inserted and key not in seen:  # a message twice in one batch is stored (and counted) once
                    seen.add(key)
                    letters.append(d)
    return Written(stored, letters)


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
