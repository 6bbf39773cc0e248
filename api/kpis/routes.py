"""Alarm-load KPIs per division (EEMUA 191): alerts per hour, peaks and floods, chattering, stale, noisy rules."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import Conn, CurrentUser
from api.errors import NotFound, Unprocessable, responses
from api.kpis.models import DivisionKpis, KpiReport, RuleCount
from api.kpis.queries import division_level, kpi_rows
from safewatch.registry.records import IsoDateTime

router = APIRouter(prefix="/api/v1/kpis", tags=["kpis"])


@router.get("", responses=responses(404), response_model=KpiReport)
def kpis(conn: Conn, user: CurrentUser,
         division: Annotated[str | None, Query(pattern=r"^\d{6}$", description="narrow to this division")] = None,
         hours: Annotated[float, Query(gt=0, le=24 * 90, description="window length")] = 24.0,
         until: Annotated[IsoDateTime | None, Query(description="window end (default now)")] = None,
         stale_hours: Annotated[float, Query(gt=0, le=24 * 365)] = 24.0) -> KpiReport:
    """KPIs over ``hours`` up to ``until``, grouped one level below the caller's (or ``division``'s) level."""
    if until is not None and until.tzinfo is None:
        raise Unprocessable("until needs a UTC offset, e.g. 2026-11-25T08:00:00Z", ["query", "until"])
    end = until or datetime.now(UTC)
    since = end - timedelta(hours=hours)
    top_level = division_level(conn, division or user.division_code)
    if top_level is None:
        raise NotFound(f"division {division} does not exist", ["query", "division"])
    group = "league" if top_level == "region" else "banner"
    rows = kpi_rows(conn, scope=user.division_code, division=division, group=group, since=since, until=end,
                    stale_hours=stale_hours)
    by: dict[str, dict[str, Any]] = defaultdict(dict)
    for name in ("counts", "now", "floods"):
        for r in rows[name]:
            by[r["g"]].update({k: v for k, v in r.items() if k != "g"})
    top: dict[str, list[RuleCount]] = defaultdict(list)
    for r in rows["top"]:
        top[r["g"]].append(RuleCount(rule_key=r["rule_key"], count=r["count"], equipment=r["equipment"]))
    divisions = []
    for code in sorted(by):
        m = by[code]
        annunciated = int(m.get("annunciated", 0))
        divisions.append(DivisionKpis(
            division_code=code, alerts=int(m.get("alerts", 0)), annunciated=annunciated,
            alerts_per_hour=round(annunciated / hours, 3), peak_10min=int(m.get("peak_10min", 0)),
            floods=int(m.get("floods", 0)), flood_minutes=round(float(m.get("flood_minutes", 0)), 1),
            chattering=int(m.get("chattering", 0)), standing=int(m.get("standing", 0)), stale=int(m.get("stale", 0)),
            shelved=int(m.get("shelved", 0)), top_rules=top.get(code, [])))
    return KpiReport(since=since, until=end, window_hours=hours, stale_hours=stale_hours, group_level=group,
                     divisions=divisions, top_rules=[RuleCount(**r) for r in rows["top_all"]])
