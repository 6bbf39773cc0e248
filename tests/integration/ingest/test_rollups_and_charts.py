"""Rollups and charts on both storages: the same API query reads raw, 1-minute or 1-hour data by span."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from ingest.batching import Batch, ReadingRow, Readings
from ingest.rollups import drop_old_partitions, refresh_late_rollups, refresh_rollups
from ingest.writer import prepare, write_batch
from safewatch.contract import METRICS_BY_KEY
from safewatch.db import one_row
from safewatch.registry.divisions import parse_divisions, shipped_divisions_text
from safewatch.registry.seed import DemoRegistry, demo_registry, insert_registry
from safewatch.schema.layout import READING_TABLES, RETENTION
from tests.services import STORAGES, create_database, drop_database

SPEED = METRICS_BY_KEY["speed"].id


@pytest.fixture(params=STORAGES)
def storage_url(request):
    url = create_database(storage=request.param)
    with psycopg.connect(url) as c:
        chosen = one_row(c.execute("SELECT value FROM safewatch_meta WHERE key = 'storage'"))[0]
    if chosen != request.param:
        drop_database(url)
        pytest.skip(f"TimescaleDB is not available on this server (got {chosen} storage)")
    yield url
    drop_database(url)


def _refresh(conn: psycopg.Connection, storage: str, now: datetime) -> None:
    if storage == "plain":
        assert refresh_rollups(conn, now) > 0
    else:  # what the continuous-aggregate policies do on their schedule
        conn.autocommit = True
        for rollup in [t.minute for t in READING_TABLES] + [t.hour for t in READING_TABLES]:
            conn.execute("CALL refresh_continuous_aggregate(%s, NULL, NULL)", (rollup,))
        conn.autocommit = False


def _an_elevator(url: str, *, seed: int, prefix: str) -> tuple[DemoRegistry, dict[str, Any], int]:
    """A registry of 40 equipment written to ``url``; one of its elevators and that elevator's id."""
    registry = demo_registry(parse_divisions(shipped_divisions_text()), 40, seed=seed, gateway_prefix=prefix)
    with psycopg.connect(url) as c:
        insert_registry(c, registry)
        eq = next(e for e in registry.equipment if e["category"] == "3000")
        eq_id = one_row(c.execute("SELECT id FROM equipment WHERE code = %s", (eq["code"],)))[0]
    return registry, eq, eq_id


def test_charts_pick_the_resolution_and_rollups_are_exact(storage_url, api_as, request):
    storage = request.node.callspec.params["storage_url"]
    registry, eq, eq_id = _an_elevator(storage_url, seed=5, prefix="roll")
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    # Two minutes an hour and a half ago (0, 1 … 5 and 10, 20), then a redelivered copy of the first.
    base = now - timedelta(minutes=90)
    minute_a = base.replace(second=0)
    minute_b = minute_a + timedelta(minutes=1)
    ms = lambda t: int(t.timestamp() * 1000)  # noqa: E731
    rows = [ReadingRow(eq_id, SPEED, ms(minute_a) + i * 1000, float(i)) for i in range(6)]
    rows += [ReadingRow(eq_id, SPEED, ms(minute_b) + 1000, 10.0), ReadingRow(eq_id, SPEED, ms(minute_b) + 2000, 20.0)]
    rows.append(ReadingRow(eq_id, SPEED, ms(now) - 60_000, 1.5))  # recent: in the last hour's raw chart
    with psycopg.connect(storage_url) as c:
        plain = prepare(c)
        assert plain is (storage == "plain")
        assert write_batch(c, Batch(readings=Readings.of(rows)), mark_rollups=plain) == len(rows)
        assert write_batch(c, Batch(readings=Readings.of(rows[:3])), mark_rollups=plain) == 0  # idempotent
        _refresh(c, storage, datetime.now(UTC) + timedelta(seconds=30))  # the writer has left every minute
        got = c.execute("SELECT bucket, avg, min, max, n FROM readings_1m WHERE equipment_id = %s AND bucket < %s "
                        "ORDER BY bucket", (eq_id, now - timedelta(minutes=30))).fetchall()
        assert got == [(minute_a, 2.5, 0.0, 5.0, 6), (minute_b, 15.0, 10.0, 20.0, 2)]
        hour = c.execute("SELECT avg, min, max, n FROM readings_1h WHERE equipment_id = %s AND bucket = %s",
                         (eq_id, minute_a.replace(minute=0))).fetchone()
        hour_start = ms(minute_a.replace(minute=0))
        in_hour = [r.value for r in rows if hour_start <= r.ts_ms < hour_start + 3_600_000]
        assert hour == (pytest.approx(sum(in_hour) / len(in_hour)), min(in_hour), max(in_hour), len(in_hour))

    client = api_as("region_inspector", "150000", db_url=storage_url)
    hour_chart = client.get(f"/api/v1/telemetry/{eq['code']}", params={"window": "hour"}).json()
    assert hour_chart["resolution"] == "readings"
    assert hour_chart["series"][0]["metric"] == "speed"
    assert [p[1] for p in hour_chart["series"][0]["points"]] == [1.5]
    day_chart = client.get(f"/api/v1/telemetry/{eq['code']}", params={"window": "day", "metric": "speed"}).json()
    assert day_chart["resolution"] == "readings_1m"
    day_points = [(p[1], p[2], p[3]) for p in day_chart["series"][0]["points"]]
    assert day_points[:2] == [(2.5, 0.0, 5.0), (15.0, 10.0, 20.0)]
    week_chart = client.get(f"/api/v1/telemetry/{eq['code']}", params={"window": "week"}).json()
    assert week_chart["resolution"] == "readings_1h"
    assert sum(1 for _ in week_chart["series"][0]["points"]) >= 1
    bad = client.get(f"/api/v1/telemetry/{eq['code']}", params={"from": now.isoformat(),
                                                                "to": (now - timedelta(hours=1)).isoformat()})
    assert bad.status_code == 422 and "must be before" in bad.json()["detail"][0]["msg"]
    # Outside the caller's jurisdiction: 404, as if it did not exist.
    own_league = next(g["league_code"] for g in registry.gateways if g["id"] == eq["gateway_id"])
    other_league = next(g["league_code"] for g in registry.gateways if g["league_code"] != own_league)
    outsider = api_as("league_inspector", other_league, db_url=storage_url)
    assert outsider.get(f"/api/v1/telemetry/{eq['code']}").status_code == 404
    insider = api_as("league_inspector", own_league, db_url=storage_url)
    assert insider.get(f"/api/v1/telemetry/{eq['code']}").status_code == 200


def test_a_minute_is_refreshed_once_its_writers_leave_it() -> None:
    """A backlog written into a closed minute batch after batch: its rollup is recomputed once the
    writers have left it (no mark for 10 s), or when its first mark is 2 minutes old, not at every
    refresh while they are still in it (each recompute re-reads the whole minute)."""
    url = create_database(storage="plain")
    try:
        with psycopg.connect(url) as c:
            registry = demo_registry(parse_divisions(shipped_divisions_text()), 5, seed=6, gateway_prefix="settle")
            insert_registry(c, registry)
            eq_id = one_row(c.execute("SELECT min(id) FROM equipment"))[0]
            assert prepare(c) is True
            minute = (datetime.now(UTC) - timedelta(minutes=10)).replace(second=0, microsecond=0)
            start = int(minute.timestamp() * 1000)

            def write(i: int) -> None:
                row = ReadingRow(eq_id, SPEED, start + i * 1000, float(i))
                write_batch(c, Batch(readings=Readings.of([row])), mark_rollups=True)

            def rolled() -> tuple[int, float] | None:
                return c.execute("SELECT n, max FROM readings_1m WHERE equipment_id = %s AND bucket = %s",
                                 (eq_id, minute)).fetchone()

            write(0)
            marked = one_row(c.execute("SELECT max(marked_at) FROM rollup_dirty"))[0]
            assert refresh_rollups(c, marked + timedelta(seconds=5)) == 0  # a writer was there a moment ago
            assert rolled() is None
            write(1)
            assert refresh_rollups(c, marked + timedelta(seconds=16)) == 1  # nobody for over 10 s (+5 s settling)
            assert rolled() == (2, 1.0)
            # Written into without a pause since a first mark over 2 minutes old: refreshed all the same.
            write(2)
            c.execute("UPDATE rollup_dirty SET first_marked_at = first_marked_at - interval '3 minutes'")
            c.commit()
            marked = one_row(c.execute("SELECT max(marked_at) FROM rollup_dirty"))[0]
            assert refresh_rollups(c, marked + timedelta(seconds=5)) == 1
            assert rolled() == (3, 2.0)
    finally:
        drop_database(url)


def test_an_hour_gains_each_new_minute_and_is_reaggregated_when_one_is_redone() -> None:
    """Plain storage: a minute rolled up for the first time is added to its hour; a minute rolled up again
    (late data) has its hour re-aggregated. Either way the hour equals its minutes aggregated afresh."""
    url = create_database(storage="plain")
    try:
        with psycopg.connect(url) as c:
            registry = demo_registry(parse_divisions(shipped_divisions_text()), 5, seed=7, gateway_prefix="hours")
            insert_registry(c, registry)
            ids = [r[0] for r in c.execute("SELECT id FROM equipment ORDER BY id LIMIT 2")]
            assert prepare(c) is True
            hour = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
            start = int(hour.timestamp() * 1000)

            def write(minute: int, values: list[float]) -> None:
                rows = [ReadingRow(eq_id, SPEED, start + minute * 60_000 + i * 1000, v + eq_id)
                        for eq_id in ids for i, v in enumerate(values)]
                write_batch(c, Batch(readings=Readings.of(rows)), mark_rollups=True)

            def refresh() -> int:
                return refresh_rollups(c, datetime.now(UTC) + timedelta(minutes=5))

            def hour_rows() -> list[tuple[object, ...]]:
                return c.execute("SELECT equipment_id, n, min, max, sum, avg FROM readings_1h WHERE bucket = %s "
                                 "ORDER BY equipment_id", (hour,)).fetchall()

            def minutes_afresh() -> list[tuple[object, ...]]:
                return c.execute("SELECT equipment_id, sum(n), min(min), max(max), sum(sum), sum(sum) / sum(n) "
                                 "FROM readings_1m WHERE bucket >= %s AND bucket < %s GROUP BY equipment_id "
                                 "ORDER BY equipment_id", (hour, hour + timedelta(hours=1))).fetchall()

            def assert_hour_is_its_minutes(n: int, low: float, high: float) -> None:
                got, want = hour_rows(), minutes_afresh()
                assert [r[:4] for r in got] == [r[:4] for r in want]  # counts and extremes exactly
                assert [r[4:] for r in got] == [pytest.approx(r[4:]) for r in want]  # sums in another order
                assert [r[1:4] for r in got] == [(n, low + eq_id, high + eq_id) for eq_id in ids]

            write(0, [1.0, 2.0, 3.0])
            assert refresh() == 1
            assert_hour_is_its_minutes(3, 1.0, 3.0)
            write(1, [0.5, 4.0])
            assert refresh() == 1  # a new minute: added to the hour
            assert_hour_is_its_minutes(5, 0.5, 4.0)
            # Late data in minute 0 (its first three redelivered, one new) with a new minute 59: minute 0
            # is rolled up again and its hour re-aggregated, minute 59 with it (not added a second time).
            write(0, [1.0, 2.0, 3.0, 9.0])
            write(59, [2.5])
            assert refresh() == 2
            assert_hour_is_its_minutes(7, 0.5, 9.0)
            write(58, [-1.0])
            assert refresh() == 1
            assert_hour_is_its_minutes(8, -1.0, 9.0)
    finally:
        drop_database(url)


def test_minute_rollups_from_the_wide_tables_equal_the_narrow_readings_grouped() -> None:
    """Plain storage: each category's minute, aggregated column by column and turned narrow, is the
    narrow view's readings grouped by equipment and metric (metrics missing at some instants too):
    counts and extremes exactly, sums and means up to the order their terms are added in, which SQL
    leaves to the plan."""
    url = create_database(storage="plain")
    try:
        with psycopg.connect(url) as c:
            assert prepare(c) is True
            minute = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
            start = int(minute.timestamp() * 1000)
            readings = Readings()
            for table in READING_TABLES:
                keys = [m.key for m in table.metrics]
                for eq_id in (1, 2):
                    for second in range(0, 60, 7):
                        # A rotating subset of the table's metrics, values that do not sum exactly.
                        values = {k: second / 3 + i * 0.1 + eq_id for i, k in enumerate(keys) if (i + second) % 3}
                        readings.add(eq_id + 10 * len(keys), start + second * 1000, values)
            write_batch(c, Batch(readings=readings), mark_rollups=True)
            assert refresh_rollups(c, datetime.now(UTC) + timedelta(minutes=5)) == 1
            got = c.execute("SELECT equipment_id, metric_id, avg, min, max, n, sum FROM readings_1m "
                            "ORDER BY 1, 2").fetchall()
            grouped = c.execute("SELECT equipment_id, metric_id, avg(value), min(value), max(value), count(*), "
                                "sum(value) FROM readings WHERE time >= %s AND time < %s GROUP BY 1, 2 ORDER BY 1, 2",
                                (minute, minute + timedelta(minutes=1))).fetchall()
            assert len(got) == sum(2 * len(t.metrics) for t in READING_TABLES)
            assert [(e, m, lo, hi, n) for e, m, _, lo, hi, n, _ in got] == [
                (e, m, lo, hi, n) for e, m, _, lo, hi, n, _ in grouped]
            assert [(avg, total) for *_, avg, _, _, _, total in got] == [
                pytest.approx((avg, total), rel=1e-12) for *_, avg, _, _, _, total in grouped]
    finally:
        drop_database(url)


RETENTION_JOBS = "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'"


def _apply_retention(conn: psycopg.Connection, storage: str) -> None:
    if storage == "plain":
        assert drop_old_partitions(conn) == len(READING_TABLES) + 1  # the old day of each, and of the minutes
    else:  # what the retention policies do on their schedule
        conn.autocommit = True
        for (job,) in conn.execute(RETENTION_JOBS).fetchall():
            conn.execute("CALL run_job(%s)", (job,))
        conn.autocommit = False


def test_past_retention_readings_and_minutes_go_and_the_hours_still_chart(storage_url, api_as, request):
    storage = request.node.callspec.params["storage_url"]
    _, eq, eq_id = _an_elevator(storage_url, seed=6, prefix="keep")
    code = eq["code"]
    now = datetime.now(UTC)
    old = (now - RETENTION - timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    ms = lambda t: int(t.timestamp() * 1000)  # noqa: E731
    rows = [ReadingRow(eq_id, SPEED, ms(old) + i * 1000, float(i)) for i in (1, 2, 3)]
    rows.append(ReadingRow(eq_id, SPEED, ms(now) - 60_000, 1.5))
    with psycopg.connect(storage_url) as c:
        plain = prepare(c)
        with c.transaction():  # TimescaleDB: a no-op
            c.execute("SELECT safewatch_ensure_partitions(%s, %s)", (old.date(), old.date()))
        assert write_batch(c, Batch(readings=Readings.of(rows)), mark_rollups=plain) == len(rows)
        _refresh(c, storage, now + timedelta(seconds=30))
        _apply_retention(c, storage)
        if not plain:  # the late-readings refresh stops short of what retention dropped: the hours stay
            c.commit()
            refresh_late_rollups(c)
        kept = {resolution: one_row(c.execute(f"SELECT count(*) FROM {resolution} "
                                              f"WHERE equipment_id = %s AND {column} < %s",
                                              (eq_id, now - RETENTION)))[0]
                for resolution, column in (("readings", "time"), ("readings_1m", "bucket"), ("readings_1h", "bucket"))}
        assert kept == {"readings": 0, "readings_1m": 0, "readings_1h": 1}

    client = api_as("region_inspector", "150000", db_url=storage_url)
    span = {"from": (old - timedelta(minutes=10)).isoformat(), "to": (old + timedelta(minutes=20)).isoformat()}
    old_chart = client.get(f"/api/v1/telemetry/{code}", params=span).json()
    assert old_chart["resolution"] == "readings_1h"
    assert [(p[1], p[2], p[3]) for p in old_chart["series"][0]["points"]] == [(2.0, 1.0, 3.0)]
    recent = client.get(f"/api/v1/telemetry/{code}", params={"window": "hour"}).json()
    assert [p[1] for p in recent["series"][0]["points"]] == [1.5]
