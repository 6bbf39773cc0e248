"""TimescaleDB's background jobs watched (issue 22): a failing job becomes a system alert and a metric.

On TimescaleDB the rollups, compression and retention are background jobs of the database, not work
of ours; when they fail (PostgreSQL 15.20 with TimescaleDB 2.28.3 failed every one of them), the
charts fall back to raw data and the disk fills, silently. The ingest's housekeeping, which does the
same upkeep itself on plain PostgreSQL, asks the database every tick which jobs' last run failed:

- the gauge ``safewatch_timescale_job_failures{proc}`` holds how many jobs of each kind are failing;
- one open ``system_alerts`` row per failing kind (source ``timescale_jobs``), re-seen while it
  fails and closed once its jobs succeed again; its message says what failed and what to do;
- the failure is logged once at ERROR and its recovery once at INFO.

`job_health` decides (pure); `check_timescale_jobs` reads, writes and counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import psycopg
from prometheus_client import CollectorRegistry, Gauge
from psycopg.types.json import Jsonb

log = logging.getLogger(__name__)

SOURCE = "timescale_jobs"
# The kinds of job our schema makes; any other (a job an operator added) is counted as 'other'.
PROCS = ("policy_refresh_continuous_aggregate", "policy_compression", "policy_retention",
         "safewatch_refresh_late_rollups", "other")

# A job is failing when its last finished run failed; its newest error says why.
SELECT_FAILING_JOBS = """
SELECT j.job_id, j.proc_name, coalesce(j.hypertable_name, '') AS hypertable, s.total_failures,
       (SELECT e.err_message FROM timescaledb_information.job_errors e
        WHERE e.job_id = j.job_id ORDER BY e.start_time DESC LIMIT 1) AS error
FROM timescaledb_information.jobs j JOIN timescaledb_information.job_stats s USING (job_id)
WHERE s.last_run_status = 'Failed'
ORDER BY j.job_id
"""
OPEN_SYSTEM_ALERT = """
INSERT INTO system_alerts (source, key, severity, message, details) VALUES (%s, %s, 'major', %s, %s)
ON CONFLICT (source, key) WHERE cleared_at IS NULL
DO UPDATE SET message = EXCLUDED.message, details = EXCLUDED.details, last_seen_at = clock_timestamp()
"""
CLEAR_SYSTEM_ALERTS = """
UPDATE system_alerts SET cleared_at = clock_timestamp()
WHERE source = %s AND cleared_at IS NULL AND NOT key = ANY (%s)
RETURNING key
"""

_WHAT_STOPS = {
    "policy_refresh_continuous_aggregate": "the 1-minute and 1-hour rollups stop (charts fall back to raw readings)",
    "policy_compression": "chunks stop being compressed (the disk fills about seven times faster)",
    "policy_retention": "old readings are no longer dropped (the disk fills)",
    "safewatch_refresh_late_rollups": "readings older than 8 days (reprocessed dead letters) miss the rollups",
    "other": "a job outside SafeWatch's schema fails",
}


@dataclass(frozen=True, slots=True)
class FailingJob:
    """One TimescaleDB job whose last run failed."""

    job_id: int
    proc: str  # one of PROCS
    hypertable: str
    total_failures: int
    error: str


@dataclass(frozen=True, slots=True)
class JobHealth:
    """What the database's jobs say: the failing ones by kind, and an alert message per failing kind."""

    by_proc: Mapping[str, int]
    alerts: Mapping[str, str]  # proc → message
    failing: tuple[FailingJob, ...]


def proc_kind(proc_name: str) -> str:
    """The bounded label of a job's procedure (PROCS)."""
    return proc_name if proc_name in PROCS else "other"


def job_health(failing: Iterable[FailingJob]) -> JobHealth:
    """Count the failing jobs by kind and word an alert for each kind that fails."""
    jobs = tuple(failing)
    by_proc = {proc: sum(1 for j in jobs if j.proc == proc) for proc in PROCS}
    alerts = {}
    for proc, count in by_proc.items():
        if not count:
            continue
        mine = [j for j in jobs if j.proc == proc]
        first = mine[0]
        alerts[proc] = (
            f"{count} TimescaleDB {proc} job(s) failing ({', '.join(str(j.job_id) for j in mine)}): "
            f"{_WHAT_STOPS[proc]}. Last error of job {first.job_id} ({first.hypertable or 'no table'}): "
            f"{first.error or 'none recorded'}. See SELECT * FROM timescaledb_information.job_errors "
            f"ORDER BY start_time DESC; fix the cause, then CALL run_job(<job_id>) to check "
            f"(docs/deploying.md, \"TimescaleDB\")")
    return JobHealth(by_proc, alerts, jobs)


class JobMetrics:
    """The gauge of failing TimescaleDB jobs, every kind at 0 from the start."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.failing = Gauge("safewatch_timescale_job_failures",
                             "TimescaleDB background jobs whose last run failed, by procedure", ["proc"],
                             registry=registry)
        for proc in PROCS:
            self.failing.labels(proc=proc).set(0)


def failing_jobs(conn: psycopg.Connection) -> list[FailingJob]:
    """The jobs of this database whose last run failed."""
    return [FailingJob(job_id, proc_kind(proc), hypertable, int(failures or 0), (error or "").strip()[:500])
            for job_id, proc, hypertable, failures, error in conn.execute(SELECT_FAILING_JOBS).fetchall()]


def check_timescale_jobs(conn: psycopg.Connection, metrics: JobMetrics,
                         was_failing: frozenset[str] = frozenset()) -> JobHealth:
    """Read the jobs' state, open or refresh a system alert per failing kind, close the others, set the gauge.

    ``was_failing`` (the kinds failing at the previous check) makes the log say a change once.
    """
    with conn.transaction():
        health = job_health(failing_jobs(conn))
        for proc, message in health.alerts.items():
            details = {"jobs": [{"job_id": j.job_id, "hypertable": j.hypertable, "total_failures": j.total_failures,
                                 "error": j.error} for j in health.failing if j.proc == proc]}
            conn.execute(OPEN_SYSTEM_ALERT, (SOURCE, proc, message, Jsonb(details)))
        conn.execute(CLEAR_SYSTEM_ALERTS, (SOURCE, list(health.alerts)))
    for proc, count in health.by_proc.items():
        metrics.failing.labels(proc=proc).set(count)
    for proc in sorted(set(health.alerts) - was_failing):
        log.error(health.alerts[proc], extra={"proc": proc, "jobs": health.by_proc[proc]})
    for proc in sorted(was_failing - set(health.alerts)):
        log.info("TimescaleDB jobs recovered", extra={"proc": proc})
    return health
