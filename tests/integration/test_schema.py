"""The one schema on both storages: TimescaleDB where the extension exists, plain PostgreSQL otherwise."""

from __future__ import annotations

import psycopg
import pytest

from ingest.batching import Batch, ReadingRow
from ingest.writer import ensure_partitions, prepare, write_batch
from safewatch.db import storage_of
from safewatch.registry.divisions import parse_divisions, shipped_divisions_text
from safewatch.registry.seed import demo_registry, insert_registry
from safewatch.schema.migrate import available_migrations, migrate
from tests.services import STORAGES, create_database, drop_database


@pytest.fixture(params=STORAGES)
def storage_db(request):
    url = create_database(storage=request.param)
    yield request.param, url
    drop_database(url)


def test_migrations_are_idempotent_and_recorded(storage_db):
    storage, url = storage_db
    assert migrate(url) == storage  # a database keeps the storage it was first migrated with
    with psycopg.connect(url) as c:
        versions = [r[0] for r in c.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == sorted({m.version for m in available_migrations()})
        assert storage_of(c) == storage


def test_divisions_are_loaded_with_their_ancestors(storage_db):
    _, url = storage_db
    with psycopg.connect(url) as c:
        levels = dict(c.execute("SELECT level, count(*) FROM divisions GROUP BY level").fetchall())
        assert levels == {"region": 1, "league": 12, "banner": 103}
        orphans = c.execute("SELECT count(*) FROM divisions WHERE level = 'banner' AND "
                            "(league_code IS NULL OR region_code <> '150000')").fetchone()[0]
        assert orphans == 0
        assert c.execute("SELECT league_code FROM divisions WHERE code = '150781'").fetchone()[0] == "150700"


def test_readings_are_idempotent_and_queried_alike(storage_db):
    storage, url = storage_db
    registry = demo_registry(parse_divisions(shipped_divisions_text()), 3, gateway_prefix="schema")
    with psycopg.connect(url) as c:
        insert_registry(c, registry)
        eq_id = c.execute("SELECT id FROM equipment ORDER BY id LIMIT 1").fetchone()[0]
        prepare(c)
        ensure_partitions(c)
        now_ms = int(c.execute("SELECT extract(epoch FROM now()) * 1000").fetchone()[0])
        rows = [ReadingRow(eq_id, 1, now_ms - i * 1000, 1.0 + i / 100) for i in range(100)]
        assert write_batch(c, Batch(readings=rows)) == 100
        assert write_batch(c, Batch(readings=rows[:50])) == 0  # a redelivery stores nothing twice
        stats = c.execute("SELECT count(*), min(value), max(value) FROM readings WHERE equipment_id = %s",
                          (eq_id,)).fetchone()
        assert stats == (100, 1.0, 1.99)
        if storage == "timescale":
            assert c.execute("SELECT count(*) FROM timescaledb_information.hypertables "
                             "WHERE hypertable_name = 'readings'").fetchone()[0] == 1
        else:
            partitions = c.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'readings'::regclass"
                                   ).fetchone()[0]
            assert partitions >= 9  # yesterday … a week ahead, plus the default partition
            in_default = c.execute("SELECT count(*) FROM readings_default").fetchone()[0]
            assert in_default == 0
