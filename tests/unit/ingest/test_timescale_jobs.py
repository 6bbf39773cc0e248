"""The decision on TimescaleDB's jobs (pure): failing jobs counted by kind, one alert message per failing kind."""

from __future__ import annotations

from ingest.timescale_jobs import PROCS, FailingJob, job_health, proc_kind


def test_no_failing_job_means_every_kind_at_zero_and_no_alert() -> None:
    health = job_health([])
    assert health.by_proc == dict.fromkeys(PROCS, 0)
    assert health.alerts == {}


def test_failing_jobs_are_counted_by_kind_and_each_failing_kind_says_what_stops_and_what_to_do() -> None:
    failing = [
        FailingJob(1001, "policy_refresh_continuous_aggregate", "_materialized_hypertable_9", 40,
                   "cannot drop portal \"\" while it is being set up"),
        FailingJob(1002, "policy_refresh_continuous_aggregate", "_materialized_hypertable_10", 3, ""),
        FailingJob(1007, proc_kind("my_own_job"), "", 1, "boom"),
    ]
    health = job_health(failing)
    assert health.by_proc == {"policy_refresh_continuous_aggregate": 2, "policy_compression": 0,
                              "policy_retention": 0, "safewatch_refresh_late_rollups": 0, "other": 1}
    assert set(health.alerts) == {"policy_refresh_continuous_aggregate", "other"}
    refresh = health.alerts["policy_refresh_continuous_aggregate"]
    assert "2 TimescaleDB policy_refresh_continuous_aggregate job(s) failing (1001, 1002)" in refresh
    assert "charts fall back to raw readings" in refresh
    assert "cannot drop portal" in refresh and "run_job" in refresh
    assert "boom" in health.alerts["other"]
