"""TimescaleDB operated, not just created (issue 22): its jobs watched, its rollups compressed, and late
readings rolled up on both storages alike."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from ingest.batching import Batch, ReadingRow, Readings
from ingest.metrics import IngestMetrics
from ingest.rollups import refresh_late_rollups, refresh_rollups
from ingest.timescale_jobs import SOURCE
from ingest.worker import DatabaseLink, Housekeeping
from ingest.writer import prepare, write_batch
from safewatch.contract import METRICS_BY_KEY
from safewatch.db import one_row
from safewatch.registry.divisions import parse_divisions, shipped_divisions_text
from safewatch.registry.seed import demo_registry, insert_registry
from safewatch.schema.layout import READING_TABLES
from tests.services import NO_TIMESCALE, STORAGES, create_database, drop_database, timescale_available
from tests.waiting import wait_until

SPEED = METRICS_BY_KEY["speed"].id
only_timescale = pytest.mark.skipif(not timescale_available(), reason=NO_TIMESCALE)

FAILING_PROC = """
CREATE PROCEDURE fails_on_purpose(job_id int, config jsonb) LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'failing on purpose (job %)', job_id;
END $$
"""
SELECT_OPEN_SYSTEM_ALERTS = "SELECT key, severity, message FROM system_alerts WHERE source = %s AND cleared_at IS NULL"
# What the trigger of schema 046 left for the notifier about the open alert of a kind.
SELECT_NOTICES_OF_OPEN = """
SELECT array_agg(n.kind ORDER BY n.id) FROM system_alert_notices n JOIN system_alerts s ON s.id = n.system_alert_id
WHERE s.source = %s AND s.key = %s AND s.cleared_at IS NULL
"""
# The jobs of the continuous aggregates, minutes before hours (the hours are made from the minutes).
POLICY_JOBS = """
SELECT j.job_id, c.view_name FROM timescaledb_information.jobs j
JOIN timescaledb_information.continuous_aggregates c ON c.view_name = j.hypertable_name
WHERE j.proc_name = %s ORDER BY c.view_name LIKE '%%_1h', c.view_name
"""
COMPRESSED_CHUNKS = """
SELECT count(*) FILTER (WHERE ch.is_compressed), count(*) FROM timescaledb_information.chunks ch
JOIN timescaledb_information.continuous_aggregates c
  ON c.materialization_hypertable_name = ch.hypertable_name
 AND c.materialization_hypertable_schema = ch.hypertable_schema
WHERE c.view_name = %s
"""
ROLLUPS_OF = """
SELECT '1m', bucket, metric_id, avg, min, max, n FROM readings_1m WHERE equipment_id = %(eq)s AND bucket < %(before)s
UNION ALL
SELECT '1h', bucket, metric_id, avg, min, max, n FROM readings_1h WHERE equipment_id = %(eq)s AND bucket < %(before)s
ORDER BY 1, 2, 3
"""


@pytest.fixture
def timescale_url() -> Iterator[str]:
    if not timescale_available():
        pytest.skip(NO_TIMESCALE)
    url = create_database(storage="timescale")
    yield url
    drop_database(url)


@pytest.fixture(params=STORAGES)
def storage_url(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    url = create_database(storage=request.param)
    yield request.param, url
    drop_database(url)


def _an_elevator(url: str, *, seed: int) -> int:
    registry = demo_registry(parse_divisions(shipped_divisions_text()), 10, seed=seed, gateway_prefix=f"ts{seed}")
    with psycopg.connect(url) as c:
        insert_registry(c, registry)
        code = next(e["code"] for e in registry.equipment if e["category"] == "3000")
        return int(one_row(c.execute("SELECT id FROM equipment WHERE code = %s", (code,)))[0])


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _run_policies(conn: psycopg.Connection, proc: str) -> None:
    """Run the policies ``proc`` now, in this session, as TimescaleDB's scheduler would."""
    conn.commit()
    conn.autocommit = True
    for job_id, _ in conn.execute(POLICY_JOBS, (proc,)).fetchall():
        conn.execute("CALL run_job(%s)", (job_id,))
    conn.autocommit = False


@only_timescale
def test_a_failing_job_becomes_a_system_alert_and_a_metric_and_both_clear(timescale_url: str, api_as: Any) -> None:
    with psycopg.connect(timescale_url, autocommit=True) as c:
        c.execute(FAILING_PROC)
        job_id = one_row(c.execute("SELECT add_job('fails_on_purpose', interval '1 hour', initial_start => now())"
                           ))[0]
        # TimescaleDB's scheduler runs it at once; wait for its failure to be recorded.
        wait_until(lambda: c.execute("SELECT last_run_status FROM timescaledb_information.job_stats "
                                     "WHERE job_id = %s", (job_id,)).fetchone(),
                   lambda row: row is not None and row[0] == "Failed", timeout=60, what="the job's failure")

    registry, stop = CollectorRegistry(), threading.Event()
    housekeeping = Housekeeping(DatabaseLink(timescale_url, stop, IngestMetrics(registry)), 30.0, stop, registry)
    housekeeping.partitions()  # connects, as the worker does before its first tick
    housekeeping.timescale()
    housekeeping.timescale()  # still failing: the same alert, seen again, not a second one
    # Other jobs may fail besides ours (TimescaleDB 2.28.3 on PostgreSQL 15.20 fails every one of them).
    failing_others = registry.get_sample_value("safewatch_timescale_job_failures", {"proc": "other"})
    assert failing_others is not None and failing_others >= 1
    assert registry.get_sample_value("safewatch_timescale_job_failures", {"proc": "policy_retention"}) is not None
    with psycopg.connect(timescale_url) as c:
        alerts = c.execute(SELECT_OPEN_SYSTEM_ALERTS, (SOURCE,)).fetchall()
        other = [a for a in alerts if a[0] == "other"]
        assert len(other) == 1
        assert other[0][1] == "major" and str(job_id) in other[0][2]
        errors = one_row(c.execute("SELECT details FROM system_alerts WHERE source = %s AND key = 'other' "
                           "AND cleared_at IS NULL", (SOURCE,)))[0]["jobs"]
        assert "failing on purpose" in next(j["error"] for j in errors if j["job_id"] == job_id)
        # Seen twice, to be told once: one opening for the notifier (tests/integration/notify/test_system_alerts.py).
        assert one_row(c.execute(SELECT_NOTICES_OF_OPEN, (SOURCE, "other")))[0] == ["opened"]
    # Those who run the deployment see it; a league's inspector does not.
    shown = api_as("region_inspector", "150000", db_url=timescale_url).get("/api/v1/system/alerts")
    assert shown.status_code == 200
    assert any(a["source"] == SOURCE and a["key"] == "other" and str(job_id) in a["message"] for a in shown.json())
    assert api_as("league_inspector", "150100", db_url=timescale_url).get("/api/v1/system/alerts").status_code == 403

    with psycopg.connect(timescale_url, autocommit=True) as c:
        c.execute("SELECT delete_job(%s)", (job_id,))
    housekeeping.timescale()
    assert registry.get_sample_value("safewatch_timescale_job_failures", {"proc": "other"}) == failing_others - 1
    if failing_others == 1:  # ours was the only one: the alert is closed
        with psycopg.connect(timescale_url) as c:
            assert [a for a in c.execute(SELECT_OPEN_SYSTEM_ALERTS, (SOURCE,)).fetchall() if a[0] == "other"] == []
            assert one_row(c.execute("SELECT count(*) FROM system_alerts WHERE source = %s AND key = 'other' "
                             "AND cleared_at IS NOT NULL", (SOURCE,)))[0] == 1
    housekeeping._db.conn.close()  # type: ignore[union-attr]


@only_timescale
def test_rollups_are_compressed_by_policy_and_answer_alike(timescale_url: str) -> None:
    eq_id = _an_elevator(timescale_url, seed=41)
    now = datetime.now(UTC)
    old = (now - timedelta(days=20)).replace(hour=10, minute=0, second=0, microsecond=0)
    rows = [ReadingRow(eq_id, SPEED, _ms(old) + i * 7_000, float(i % 9) + 0.25) for i in range(40)]
    with psycopg.connect(timescale_url) as c:
        prepare(c)
        assert write_batch(c, Batch(readings=Readings.of(rows))) == len(rows)
        policies = {view for _, view in c.execute(POLICY_JOBS, ("policy_compression",)).fetchall()}
        assert policies == {t.minute for t in READING_TABLES} | {t.hour for t in READING_TABLES}
        c.commit()
        refresh_late_rollups(c)  # 20 days old: beyond the refresh policies, rolled up by the ingest's upkeep
        before = c.execute(ROLLUPS_OF, {"eq": eq_id, "before": now - timedelta(days=9)}).fetchall()
        assert [r[0] for r in before].count("1m") == 5 and [r[0] for r in before].count("1h") == 1
        _run_policies(c, "policy_compression")
        for table in READING_TABLES:
            for rollup in (table.minute, table.hour):
                compressed, chunks = one_row(c.execute(COMPRESSED_CHUNKS, (rollup,)))
                assert compressed == chunks, f"{rollup}: {compressed} of {chunks} chunks compressed"
        assert one_row(c.execute(COMPRESSED_CHUNKS, ("elevator_readings_1m",)))[0] >= 1
        assert c.execute(ROLLUPS_OF, {"eq": eq_id, "before": now - timedelta(days=9)}).fetchall() == before
        # A late reading into a compressed minute: rolled up all the same.
        assert write_batch(c, Batch(readings=Readings.of([ReadingRow(eq_id, SPEED, _ms(old) + 1_000, 100.0)]))) == 1
        c.commit()
        refresh_late_rollups(c)
        minute = c.execute("SELECT max, n FROM readings_1m WHERE equipment_id = %s AND bucket = %s",
                           (eq_id, old)).fetchone()
        assert minute == (100.0, 10)


def _expected(readings: list[ReadingRow]) -> list[tuple[object, ...]]:
    """The rollups of ``readings`` (one metric), computed here: per minute, then per hour."""
    out: list[tuple[object, ...]] = []
    for label, width in (("1h", 3_600_000), ("1m", 60_000)):  # as ROLLUPS_OF orders them
        buckets: dict[int, list[float]] = {}
        for r in readings:
            buckets.setdefault(r.ts_ms - r.ts_ms % width, []).append(r.value)
        for start, values in sorted(buckets.items()):
            out.append((label, datetime.fromtimestamp(start / 1000, UTC), SPEED,
                        pytest.approx(sum(values) / len(values)), min(values), max(values), len(values)))
    return out


def test_readings_older_than_the_refresh_window_reach_the_rollups_on_both_storages(
        storage_url: tuple[str, str]) -> None:
    """Dead letters reprocessed weeks later write readings the refresh policies (8 days) never reach."""
    storage, url = storage_url
    eq_id = _an_elevator(url, seed=42)
    now = datetime.now(UTC)
    old = (now - timedelta(days=30)).replace(hour=7, minute=58, second=0, microsecond=0)
    readings = [ReadingRow(eq_id, SPEED, _ms(old) + i * 20_000, float(i)) for i in range(12)]  # 07:58 to 08:01
    recent = ReadingRow(eq_id, SPEED, _ms(now - timedelta(hours=2)), 3.0)
    with psycopg.connect(url) as c:
        plain = prepare(c)
        assert write_batch(c, Batch(readings=Readings.of([recent])), mark_rollups=plain) == 1
        # The upkeep of the day, then the late readings arrive (as a reprocessed dead letter writes them).
        if plain:
            refresh_rollups(c, now + timedelta(minutes=5))
        else:
            _run_policies(c, "policy_refresh_continuous_aggregate")
        assert write_batch(c, Batch(readings=Readings.of(readings)), mark_rollups=plain) == len(readings)
        if not plain:  # the policies leave them out: what the fault was
            _run_policies(c, "policy_refresh_continuous_aggregate")
            assert c.execute(ROLLUPS_OF, {"eq": eq_id, "before": now - timedelta(days=9)}).fetchall() == []
        # The ingest's upkeep: plain recomputes the marked minutes, TimescaleDB refreshes beyond the policies.
        if plain:
            assert refresh_rollups(c, now + timedelta(minutes=5)) == 4
        else:
            c.commit()
            refresh_late_rollups(c, now)
        got = c.execute(ROLLUPS_OF, {"eq": eq_id, "before": now - timedelta(days=9)}).fetchall()
    assert got == _expected(readings), storage
