"""Telemetry charts: one equipment's metrics over a span, at the resolution the span calls for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import Conn, CurrentUser
from api.errors import NotFound, Unprocessable
from api.telemetry.models import Chart, Series
from api.telemetry.queries import get_equipment, series_rows
from api.telemetry.resolution import choose_resolution
from safewatch.registry.records import IsoDateTime

router = APIRouter(prefix="/api/v1/telemetry", tags=["telemetry"])
WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}


@router.get("/{code}", response_model=Chart)
def chart(code: Annotated[str, Path(pattern=r"^[A-Za-z0-9]{4,32}$")], conn: Conn, user: CurrentUser,
          window: Annotated[str | None, Query(pattern=r"^(hour|day|week)$",
                                              description="the last hour, day or week (default hour)")] = None,
          start: Annotated[IsoDateTime | None, Query(alias="from")] = None,
          end: Annotated[IsoDateTime | None, Query(alias="to")] = None,
          metric: Annotated[list[str] | None, Query(max_length=40)] = None) -> Chart:
    """Series of one equipment; raw up to an hour, by minute up to a day, by hour beyond."""
    equipment = get_equipment(conn, scope=user.division_code, code=code)
    if equipment is None:
        raise NotFound(f"equipment {code} is not in your jurisdiction", ["path", "code"])
    if window is not None and (start is not None or end is not None):
        raise Unprocessable("give either 'window' or 'from'/'to', not both", ["query", "window"])
    now = datetime.now(UTC)
    end = end or now
    start = start or end - WINDOWS[window or "hour"]
    if start.tzinfo is None or end.tzinfo is None:
        raise Unprocessable("'from' and 'to' need a UTC offset, e.g. 2026-11-25T08:00:00+08:00", ["query", "from"])
    try:
        resolution = choose_resolution(start, end, now)
    except ValueError as exc:
        raise Unprocessable(str(exc), ["query", "from"]) from None
    rows = series_rows(conn, resolution=resolution, equipment_id=equipment["id"], start=start, end=end,
                       metrics=metric)
    series = [Series(metric=key, unit=group[0]["unit"], points=[(r["t"], r["avg"], r["min"], r["max"]) for r in group])
              for key, group in ((k, list(g)) for k, g in groupby(rows, key=lambda r: r["metric"]))]
    return Chart(equipment=code, resolution=resolution.value, start=start, end=end, series=series)
