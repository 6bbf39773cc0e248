"""The one schema on both storages: TimescaleDB where the extension exists, plain PostgreSQL otherwise."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest
from click.testing import CliRunner

from ingest.batching import METRIC_IDS, Batch, ReadingRow, Readings
from ingest.rollups import drop_old_partitions
from ingest.writer import ensure_partitions, prepare, write_batch
from safewatch.cli import main as cli
from safewatch.db import one_row, storage_of
from safewatch.registry.divisions import parse_divisions, shipped_divisions_text
from safewatch.registry.seed import demo_registry, insert_registry
from safewatch.schema.layout import READING_TABLES, RETENTION
from safewatch.schema.migrate import StorageMismatch, available_migrations, migrate
from tests.services import NO_TIMESCALE, STORAGES, create_database, drop_database, timescale_available
from tests.waiting import wait_until

WIDE_READINGS = 30  # the first migration of the wide layout (030-032)
ROLLUP_RETENTION = 35  # the 1-minute rollups in daily partitions
DAY_MS = 86_400_000
READING_NAMES = tuple(t.name for t in READING_TABLES)
MINUTE_ROWS = "SELECT bucket, equipment_id, metric_id, avg FROM readings_1m ORDER BY 1"
NARROW_ROWS = "SELECT time, equipment_id, metric_id, value FROM readings ORDER BY 1, 2, 3"
POLICIES_OF = "SELECT proc_name FROM timescaledb_information.jobs WHERE hypertable_name = ANY (%s)"


@pytest.fixture(params=STORAGES)
def storage_db(request):
    url = create_database(storage=request.param)
    yield request.param, url
    drop_database(url)


def test_migrations_are_idempotent_and_recorded(storage_db):
    storage, url = storage_db
    assert migrate(url) == storage  # a database keeps the storage it was first migrated with
    with pytest.raises(StorageMismatch, match="first migrated with"):  # and is not switched by asking
        migrate(url, storage="plain" if storage == "timescale" else "timescale")
    with psycopg.connect(url) as c:
        versions = [r[0] for r in c.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == sorted({m.version for m in available_migrations() if m.variant in (None, storage)})
        assert storage_of(c) == storage


def test_divisions_are_loaded_with_their_ancestors(storage_db):
    _, url = storage_db
    with psycopg.connect(url) as c:
        levels: dict[str, int] = dict(c.execute("SELECT level, count(*) FROM divisions GROUP BY level").fetchall())
        assert levels == {"region": 1, "league": 12, "banner": 103}
        orphans = one_row(c.execute("SELECT count(*) FROM divisions WHERE level = 'banner' AND "
                                    "(league_code IS NULL OR region_code <> '150000')"))[0]
        assert orphans == 0
        assert one_row(c.execute("SELECT league_code FROM divisions WHERE code = '150781'"))[0] == "150700"


def _ready_to_write(c: psycopg.Connection) -> tuple[int, int]:
    """A small registry, the writer's set-up and today's partitions: (an equipment id, now in epoch ms)."""
    insert_registry(c, demo_registry(parse_divisions(shipped_divisions_text()), 3, gateway_prefix="schema"))
    eq_id = one_row(c.execute("SELECT id FROM equipment ORDER BY id LIMIT 1"))[0]
    prepare(c)
    ensure_partitions(c)
    return eq_id, int(one_row(c.execute("SELECT extract(epoch FROM now()) * 1000"))[0])


def test_readings_are_idempotent_and_queried_alike(storage_db):
    storage, url = storage_db
    with psycopg.connect(url) as c:
        eq_id, now_ms = _ready_to_write(c)
        rows = [ReadingRow(eq_id, 1, now_ms - i * 1000, 1.0 + i / 100) for i in range(100)]
        assert write_batch(c, Batch(readings=Readings.of(rows))) == 100
        assert write_batch(c, Batch(readings=Readings.of(rows[:50]))) == 0  # a redelivery stores nothing twice
        stats = c.execute("SELECT count(*), min(value), max(value) FROM readings WHERE equipment_id = %s",
                          (eq_id,)).fetchone()
        assert stats == (100, 1.0, 1.99)
        for table in READING_TABLES:
            if storage == "timescale":
                assert one_row(c.execute("SELECT count(*) FROM timescaledb_information.hypertables "
                                         "WHERE hypertable_name = %s", (table.name,)))[0] == 1
            else:
                partitions = one_row(c.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass",
                                               (table.name,)))[0]
                assert partitions >= 9  # yesterday … a week ahead, plus the default partition
                in_default = one_row(c.execute(f"SELECT count(*) FROM {table.name}_default"))[0]
                assert in_default == 0


def test_each_category_table_has_a_column_per_catalogue_metric(storage_db):
    """A metric added to the catalogue needs its migration (a nullable column): this says which."""
    _, url = storage_db
    with psycopg.connect(url) as c:
        for table in READING_TABLES:
            columns = [r[0] for r in c.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
                (table.name,))]
            assert columns == ["time", "equipment_id", *table.columns], (
                f"{table.name} must have a nullable double precision column per metric of category "
                f"{table.category}: write the migration that adds the missing ones")


def test_a_message_repeating_some_stored_values_adds_only_the_new_ones(storage_db):
    _, url = storage_db
    with psycopg.connect(url) as c:
        eq_id, now_ms = _ready_to_write(c)
        speed, load, floor = (METRIC_IDS[k] for k in ("speed", "load", "floor"))
        assert write_batch(c, Batch(readings=Readings.of([ReadingRow(eq_id, speed, now_ms, 1.5),
                                              ReadingRow(eq_id, load, now_ms, 40.0)]))) == 2
        # The same instant again: speed given twice (the stored 1.5 stays), floor new.
        again = [ReadingRow(eq_id, speed, now_ms, 9.9), ReadingRow(eq_id, floor, now_ms, 3.0),
                 ReadingRow(eq_id, floor, now_ms, 4.0)]  # and twice within the batch: the first stays
        assert write_batch(c, Batch(readings=Readings.of(again))) == 1
        stored: dict[int, float] = dict(c.execute("SELECT metric_id, value FROM readings WHERE equipment_id = %s",
                                                  (eq_id,)))
        assert stored == {speed: 1.5, load: 40.0, floor: 3.0}


@pytest.mark.parametrize("storage", STORAGES)
def test_an_upgrade_moves_narrow_readings_into_the_wide_tables(storage):
    url = create_database(storage=storage, upto=WIDE_READINGS - 1)
    try:
        with psycopg.connect(url) as c:
            c.execute("SELECT safewatch_ensure_partitions(current_date - 1, current_date + 1)")
            # Ten days old: past the reach of TimescaleDB's refresh policies (8 days).
            c.execute("""INSERT INTO readings (time, equipment_id, metric_id, value)
                         SELECT now() - interval '10 days' - i * interval '1 second', 7, m, i + m / 100.0
                         FROM generate_series(0, 99) AS i, unnest(ARRAY[1, 2, 20, 40, 52]) AS m""")
            before = c.execute(NARROW_ROWS).fetchall()
        migrate(url)
        with psycopg.connect(url) as c:
            assert c.execute(NARROW_ROWS).fetchall() == before
            rows = {t.name: one_row(c.execute(f"SELECT count(*) FROM {t.name}"))[0] for t in READING_TABLES}
            assert rows == {"boiler_readings": 100, "pressure_vessel_readings": 100, "elevator_readings": 100}
            if storage == "timescale":  # rebuilt from the copied rows (plain keeps its rollup tables as they are)
                hourly = one_row(c.execute("SELECT sum(n) FROM readings_1h WHERE equipment_id = 7"))[0]
                assert hourly == 500
    finally:
        drop_database(url)


def test_an_upgrade_keeps_the_minute_rollups_in_one_partition_named_for_their_last_day():
    url = create_database(storage="plain", upto=ROLLUP_RETENTION - 1)
    try:
        with psycopg.connect(url) as c:
            c.execute("""INSERT INTO readings_1m (bucket, equipment_id, metric_id, avg, min, max, n, sum)
                         SELECT date_trunc('minute', now()) + d * interval '1 day', 7, 1, d, d, d, 1, d
                         FROM unnest(ARRAY[-500, 0, 3]) AS d""")
            before = c.execute(MINUTE_ROWS).fetchall()
            last_day = one_row(c.execute("SELECT (date_trunc('minute', now()) + interval '3 days')::date"))[0]
        migrate(url)
        with psycopg.connect(url) as c:
            assert c.execute(MINUTE_ROWS).fetchall() == before
            held_in = {r[0] for r in c.execute("SELECT tableoid::regclass::text FROM readings_1m")}
            assert held_in == {f"readings_1m_p{last_day:%Y%m%d}"}  # dropped whole once that day is past retention
            c.execute("""INSERT INTO readings_1m (bucket, equipment_id, metric_id, avg, min, max, n, sum)
                         VALUES (%s::date + 1, 7, 1, 4, 4, 4, 1, 4)""", (last_day,))
            day_after = one_row(c.execute("SELECT tableoid::regclass::text FROM readings_1m WHERE avg = 4"))[0]
            assert day_after == f"readings_1m_p{last_day + timedelta(days=1):%Y%m%d}"
    finally:
        drop_database(url)


def test_retention_also_empties_the_default_partitions_of_rows_past_it():
    """Rows written for a day with no partition of its own land in a default partition; they age out too."""
    url = create_database(storage="plain")
    try:
        with psycopg.connect(url) as c:
            eq_id, now_ms = _ready_to_write(c)
            old, recent = now_ms - (RETENTION.days + 2) * DAY_MS, now_ms - 5 * DAY_MS  # neither day has a partition
            write_batch(c, Batch(readings=Readings.of([ReadingRow(eq_id, 1, old, 1.0),
                                                       ReadingRow(eq_id, 1, recent, 2.0)])))
            c.execute("""INSERT INTO readings_1m (bucket, equipment_id, metric_id, avg, min, max, n, sum)
                         SELECT to_timestamp(t / 1000.0), %s, 1, t, t, t, 1, t FROM unnest(%s::bigint[]) AS t""",
                      (eq_id, [old, recent]))
            c.commit()
            assert drop_old_partitions(c) == 0  # no daily partition is that old
            assert c.execute("SELECT value FROM readings WHERE equipment_id = %s", (eq_id,)).fetchall() == [(2.0,)]
            assert c.execute("SELECT avg FROM readings_1m").fetchall() == [(recent,)]
            held = [one_row(c.execute(f"SELECT count(*) FROM {name}_default"))[0]
                    for name in (*READING_NAMES, "readings_1m")]
            assert held == [1, 0, 0, 1]
    finally:
        drop_database(url)


LOCK_THRESHOLDS = "SELECT * FROM _timescaledb_catalog.continuous_aggs_invalidation_threshold FOR UPDATE"
MIGRATION_WAITING_ON_A_ROW = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND query LIKE '%%DROP MATERIALIZED VIEW readings_1h%%'
  AND wait_event_type = 'Lock' AND wait_event = 'transactionid'
"""


@pytest.mark.skipif(not timescale_available(), reason=NO_TIMESCALE)
def test_migration_030_survives_a_concurrent_refresh_of_the_aggregates_it_drops():
    """Migration 030 drops schema 010's continuous aggregates. A refresh of them holding the invalidation
    threshold's row and then reading the aggregate, as TimescaleDB's refresh does, deadlocked with the drop
    (3 in 25 fresh databases failed so under a looping refresh): here the refresh's side is played step by
    step, so the deadlock happens every time. The migration is rolled back whole and tried again."""
    url = create_database(storage="timescale", upto=WIDE_READINGS - 1)
    try:
        with psycopg.connect(url, autocommit=True) as c:
            assert {r[0] for r in c.execute(POLICIES_OF, (["readings_1m", "readings_1h"],))} == {
                "policy_refresh_continuous_aggregate"}
        outcome: list[BaseException | str] = []

        def run_migrations() -> None:
            try:
                migrate(url)
                outcome.append("migrated")
            except BaseException as exc:  # handed to the test's thread
                outcome.append(exc)

        with psycopg.connect(url) as refresh:
            refresh.execute(LOCK_THRESHOLDS)  # the refresh's first step: the threshold rows
            migrating = threading.Thread(target=run_migrations)
            migrating.start()
            with psycopg.connect(url, autocommit=True) as observer:
                wait_until(lambda: one_row(observer.execute(MIGRATION_WAITING_ON_A_ROW))[0], bool, timeout=60,
                           what="migration 030 waiting for the threshold row")
            refresh.execute("SELECT count(*) FROM readings_1h")  # its next: the aggregate the drop holds
            refresh.commit()
        migrating.join(timeout=120)
        assert outcome == ["migrated"]
        with psycopg.connect(url) as c:
            assert one_row(c.execute("SELECT max(version) FROM schema_migrations"))[0] == max(
                m.version for m in available_migrations())
            assert c.execute(POLICIES_OF, (["readings_1m", "readings_1h"],)).fetchall() == []
    finally:
        drop_database(url)


def test_timescale_storage_asked_of_a_plain_database_is_refused_with_what_to_do():
    """`migrate --storage timescale` on a plain database printed "migrated (plain storage)" and exited 0."""
    url = create_database(storage="plain")
    try:
        with pytest.raises(StorageMismatch, match=r"first migrated with plain storage.*does not convert it"):
            migrate(url, storage="timescale")
        result = CliRunner().invoke(cli, ["migrate", "--storage", "timescale"],
                                    env={"SAFEWATCH_DB__URL": url, "SAFEWATCH_LOG_JSON": "true"})
        assert result.exit_code == 2, result.output
        assert "not migrated: this database was first migrated with plain storage" in result.output
        assert "safewatch migrate --storage timescale" in result.output  # what to do, against a new database
        assert "migrated (plain storage)" not in result.output
        assert migrate(url, storage="plain") == "plain" and migrate(url) == "plain"  # the same storage: fine
    finally:
        drop_database(url)
