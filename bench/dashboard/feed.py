"""The feed's and the console's queries at provincial scale: ``python -m bench.dashboard.feed``.

1. A fresh database on SAFEWATCH_BENCH_DB_URL (default the local server), ``--equipment`` generated
   equipment (default 200,000, loaded with COPY) and ``--alerts`` open alerts (default 5,000), of which
   ``--criticals`` (default 40) critical and the oldest of all, as the region user of issue 25 saw them.
2. Times, in the region's scope, what the dashboard asks for: the feed's first page (100, sorted by the
   server), its totals, the next page (keyset cursor), the emergency console's first page and totals; and,
   beside them, the statement the feed used before (the newest 500, ``ORDER BY id DESC``).
3. Prints median and max of ``--repeats`` runs each, how many criticals each first page holds, and the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row

from api.alerts.queries import SELECT_ALERT_PAGE_BY_PRIORITY, alert_totals, list_alerts
from api.dashboard.queries import emergency_alerts, emergency_totals
from bench.dashboard.load import load_registry
from bench.machine import brief
from safewatch.db import one_row, with_database
from safewatch.registry.divisions import load_divisions
from safewatch.schema.migrate import migrate

SEED_OPEN_ALERTS = """
INSERT INTO alerts (equipment_id, rule_key, severity, state, active, division_code, league_code, message,
                    opened_at, updated_at)
SELECT e.id, 'bench.feed', CASE WHEN e.n <= %(criticals)s THEN 'critical'
                                ELSE (ARRAY['major', 'minor', 'warning'])[1 + e.n %% 3] END,
       CASE WHEN e.n %% 2 = 0 THEN 'active_unack' ELSE 'active_ack' END, true, e.banner_code, d.league_code,
       'benchmark alert', now() - interval '3 days' + e.n * interval '1 second', now()
FROM (SELECT id, banner_code, row_number() OVER (ORDER BY id) AS n FROM equipment
      WHERE id %% (SELECT greatest(1, count(*) / %(alerts)s) FROM equipment) = 0) e
JOIN divisions d ON d.code = e.banner_code
WHERE e.n <= %(alerts)s
"""
# What the feed asked for before issue 25: the newest 500, sorted in the browser.
OLD_FEED = """
SELECT a.id, a.severity FROM alerts a JOIN equipment e ON e.id = a.equipment_id
JOIN divisions d ON d.code = a.division_code
WHERE (d.code = %(scope)s OR d.league_code = %(scope)s OR d.region_code = %(scope)s) AND a.closed_at IS NULL
ORDER BY a.id DESC LIMIT 500
"""
REGION = "150000"


def _params(**extra: Any) -> dict[str, Any]:
    base = {"scope": REGION, "division": None, "state": None, "open": True, "equipment": None, "kind": None,
            "rule": None, "assignee": None, "world": "hazard", "severity": None, "limit": 100, "after_rank": None,
            "after_acked": None, "after_opened": None, "after_id": None}
    return {**base, **extra}


def _time(fn: Callable[[], list[dict[str, Any]]], repeats: int) -> tuple[list[float], list[dict[str, Any]]]:
    took, rows = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        rows = fn()
        took.append((time.perf_counter() - started) * 1000)
    return took, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--equipment", type=int, default=200_000)
    parser.add_argument("--alerts", type=int, default=5_000)
    parser.add_argument("--criticals", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--storage", choices=["plain", "timescale"], default=None)
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    args = parser.parse_args()

    admin_url = os.environ.get("SAFEWATCH_BENCH_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"safewatch_bench_feed_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin_url, name)
    try:
        migrate(url, storage=args.storage)
        with psycopg.connect(url) as conn:
            load_divisions(conn)
        loaded = load_registry(url, args.equipment, alert_every=10**9)
        with psycopg.connect(url, row_factory=dict_row) as conn:
            conn.execute("DELETE FROM alerts")
            conn.execute(SEED_OPEN_ALERTS, {"alerts": args.alerts, "criticals": args.criticals})
            conn.commit()
            conn.execute("ANALYZE alerts")
            opened = one_row(conn.execute("SELECT count(*) AS n FROM alerts WHERE closed_at IS NULL"))["n"]
            print(f"{loaded['equipment']:,} equipment, {opened:,} open alerts ({args.criticals} critical, the oldest), "
                  f"region scope; {args.repeats} runs each, ms")
            first = list_alerts(conn, by_priority=True, **_params())
            last = first[-1]
            after = _params(after_rank=last["severity_rank"], after_acked=last["acknowledged"],
                            after_opened=last["opened_at"], after_id=last["id"])
            # As the API runs them (never prepared), and, beside them, the first page as a prepared statement's
            # generic plan would run it (what psycopg does after 5 executions unless told not to).
            cases: list[tuple[str, Callable[[], list[dict[str, Any]]]]] = [
                ("feed first page (100, server order)", lambda: list_alerts(conn, by_priority=True, **_params())),
                ("feed totals per severity", lambda: alert_totals(conn, **_params())),
                ("feed next page (keyset)", lambda: list_alerts(conn, by_priority=True, **after)),
                ("console first page (100)", lambda: emergency_alerts(conn, scope=REGION, after=None, limit=100)),
                ("console totals", lambda: emergency_totals(conn, scope=REGION)),
                ("before issue 25: newest 500 by id", lambda: conn.execute(OLD_FEED, {"scope": REGION}).fetchall()),
                ("feed first page, prepared (generic plan)",
                 lambda: conn.execute(SELECT_ALERT_PAGE_BY_PRIORITY, _params(), prepare=True).fetchall()),
            ]
            for label, fn in cases:
                took, rows = _time(fn, args.repeats)
                page = bool(rows) and "id" in rows[0]
                criticals = sum(r["severity"] == "critical" for r in rows) if page else "-"
                print(f"  {label:<41} median {statistics.median(took):6.1f}  max {max(took):6.1f}  "
                      f"rows {len(rows):>4}  criticals among them {criticals}")
        print(brief())
    finally:
        if args.keep:
            print(f"database kept: {url}")
        else:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
