"""The overview in one response: the jurisdiction tree with its counts, and the map.

Counting the registry (equipment, online, inspections overdue, per banner and per 0.1° map cell) is
one pass over every equipment row, which grows with the registry (measured: docs/performance.md).
Those figures move slowly (a gateway going offline, a date passing), so the process keeps the last
pass and serves it while a background thread takes the next one once it is older than
`REGISTRY_TTL_S` (stale-while-revalidate). Open alerts, which must be live, are counted on every request
(they are few). `fold_overview` is the pure part: it scopes and sums what the two queries return.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import DictRow, tuple_row
from psycopg_pool import ConnectionPool

from api.deps import IN_SCOPE

log = logging.getLogger(__name__)

REGISTRY_TTL_S = 10.0
SEVERITIES = ("critical", "major", "minor", "warning")

# Every equipment counted once, by (banner, map cell): banner totals and map cells both fold from it.
SELECT_REGISTRY_COUNTS = """
SELECT e.banner_code, round(e.lat * 10) / 10 AS lat, round(e.lon * 10) / 10 AS lon, count(*) AS equipment,
       count(*) FILTER (WHERE gs.state = 'online') AS online,
       count(*) FILTER (WHERE e.next_inspection_on < current_date AND e.status = 'in_use') AS overdue
FROM equipment e LEFT JOIN gateway_status gs ON gs.gateway_id = e.gateway_id
GROUP BY 1, 2, 3
"""
SELECT_DIVISIONS_IN_SCOPE = f"""
SELECT d.code, d.name, d.name_en, d.parent_code, d.level, d.league_code, d.region_code
FROM divisions d WHERE {IN_SCOPE} ORDER BY d.code
"""
SELECT_OPEN_ALERT_COUNTS = f"""
SELECT a.division_code, a.severity, count(*) AS n
FROM alerts a JOIN divisions d ON d.code = a.division_code
WHERE a.closed_at IS NULL AND a.world = 'hazard' AND {IN_SCOPE}
GROUP BY 1, 2
"""


@dataclass(frozen=True, slots=True)
class RegistryCount:
    """Equipment of one banner within one map cell (lat/lon None: no position registered)."""

    banner_code: str
    lat: float | None
    lon: float | None
    equipment: int
    online: int
    overdue: int


def fold_overview(divisions: Sequence[Mapping[str, Any]], counts: Iterable[RegistryCount],
                  open_alerts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Banner-level rows for the tree (the page rolls them up) and the map cells, for ``divisions`` only.

    ``divisions`` is already the caller's jurisdiction; counts of banners outside it are dropped.
    Cells are ``[lat, lon, league_code, equipment, offline]`` (arrays: thousands of them, kept small).
    """
    league_of = {d["code"]: d["league_code"] for d in divisions if d["level"] == "banner"}
    rows = {d["code"]: {"code": d["code"], "name": d["name"], "name_en": d["name_en"],
                        "parent_code": d["parent_code"], "level": d["level"], "equipment": 0, "online": 0,
                        "inspections_overdue": 0, **dict.fromkeys(SEVERITIES, 0)} for d in divisions}
    cells: dict[tuple[float, float, str], list[Any]] = {}
    for c in counts:
        if c.banner_code not in league_of:
            continue
        row = rows[c.banner_code]
        row["equipment"] += c.equipment
        row["online"] += c.online
        row["inspections_overdue"] += c.overdue
        if c.lat is not None and c.lon is not None:
            league = league_of[c.banner_code] or c.banner_code
            cell = cells.setdefault((c.lat, c.lon, league), [c.lat, c.lon, league, 0, 0])
            cell[3] += c.equipment
            cell[4] += c.equipment - c.online
    for a in open_alerts:
        if a["division_code"] in rows and a["severity"] in SEVERITIES:
            rows[a["division_code"]][a["severity"]] += a["n"]
    return {"divisions": list(rows.values()), "cells": list(cells.values())}


class RegistryCounts:
    """The last registry pass, refreshed in the background once older than ``ttl_s``."""

    def __init__(self, ttl_s: float = REGISTRY_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._snapshot: tuple[float, list[RegistryCount]] | None = None
        self._lock = threading.Lock()
        self._refreshing = False

    @property
    def age_s(self) -> float:
        return 0.0 if self._snapshot is None else time.monotonic() - self._snapshot[0]

    def get(self, pool: ConnectionPool) -> list[RegistryCount]:
        snapshot = self._snapshot
        if snapshot is None:
            with self._lock:  # the first request of the process waits for the first pass
                if self._snapshot is None:
                    self._snapshot = (time.monotonic(), self._load(pool))
                return self._snapshot[1]
        taken, counts = snapshot
        if time.monotonic() - taken > self.ttl_s and not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self._refresh, args=(pool,), name="dashboard-registry-counts",
                             daemon=True).start()
        return counts

    def warm_in_background(self, pool: ConnectionPool) -> None:
        """Take the first pass now (at start-up), so the first page load does not wait for it."""

        def first_pass() -> None:
            with self._lock:
                if self._snapshot is None:
                    try:
                        self._snapshot = (time.monotonic(), self._load(pool))
                    except psycopg.Error as exc:
                        log.warning("registry counts not taken at start-up; the first overview will take them",
                                    extra={"error": str(exc)})

        threading.Thread(target=first_pass, name="dashboard-registry-counts", daemon=True).start()

    def _refresh(self, pool: ConnectionPool) -> None:
        try:
            self._snapshot = (time.monotonic(), self._load(pool))
        except psycopg.Error as exc:
            log.warning("registry counts not refreshed; serving the previous ones", extra={"error": str(exc)})
        finally:
            self._refreshing = False

    @staticmethod
    def _load(pool: ConnectionPool) -> list[RegistryCount]:
        with pool.connection() as conn:
            return count_registry(conn)


def count_registry(conn: psycopg.Connection[Any]) -> list[RegistryCount]:
    """One pass over the registry: equipment, online and overdue per (banner, 0.1° cell)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        return [RegistryCount(*r) for r in cur.execute(SELECT_REGISTRY_COUNTS)]


def divisions_in_scope(conn: psycopg.Connection[DictRow], *, scope: str) -> list[dict[str, Any]]:
    return conn.execute(SELECT_DIVISIONS_IN_SCOPE, {"scope": scope}).fetchall()


def open_alert_counts(conn: psycopg.Connection[DictRow], *, scope: str) -> list[dict[str, Any]]:
    return conn.execute(SELECT_OPEN_ALERT_COUNTS, {"scope": scope}).fetchall()
