"""The dashboard: static pages served by the API process itself, plus the few read models they need.

No front-end server and no CDN at run time: the page, its script, styles and translations are plain
files under ``static/`` (no build step).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sse_starlette import EventSourceResponse

from api.alerts.cursors import decode_key, encode_key
from api.alerts.models import SeverityTotals
from api.dashboard.models import (
    EmergencyAlert,
    EmergencyPage,
    EquipmentEvent,
    EquipmentLive,
    LatestValue,
    NextEscalation,
    OverviewRead,
)
from api.dashboard.overview import RegistryCounts, divisions_in_scope, fold_overview, open_alert_counts
from api.dashboard.queries import (
    emergency_alerts,
    emergency_totals,
    equipment_in_scope,
    latest_values,
    map_alerts,
    next_escalations,
    recent_events,
)
from api.dashboard.stream import AlertHub
from api.deps import Conn, CurrentUser
from api.errors import NotFound
from safewatch.contract import METRICS_BY_KEY


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Runs inside the app's own lifespan (the pool exists by now): count the registry ahead of the first visit.
    counts = app.state.dashboard_registry_counts = RegistryCounts()
    counts.warm_in_background(app.state.pool)
    yield


router = APIRouter(tags=["dashboard"], lifespan=_lifespan)

STATIC_TYPES = {"app.js": "text/javascript", "i18n.js": "text/javascript", "style.css": "text/css"}
SSE_PING_S = 15


def _static(name: str) -> str:
    return resources.files("api.dashboard").joinpath("static", name).read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> HTMLResponse:
    return HTMLResponse(_static("index.html"))


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    if name not in STATIC_TYPES:
        raise NotFound(f"no static file {name!r}; the dashboard serves {sorted(STATIC_TYPES)}", ["path", "name"])
    return Response(_static(name), media_type=STATIC_TYPES[name], headers={"Cache-Control": "no-cache"})


def _registry_counts(request: Request) -> RegistryCounts:
    counts = getattr(request.app.state, "dashboard_registry_counts", None)
    if counts is None:
        counts = request.app.state.dashboard_registry_counts = RegistryCounts()
    return counts


@router.get("/api/v1/dashboard/overview", response_model=OverviewRead)
def overview(request: Request, conn: Conn, user: CurrentUser) -> Response:
    """The jurisdiction tree with counts per division, the map cells and the open alerts on the map.

    Equipment/online/overdue counts may be up to ~10 s old (``registry_age_s``); alert counts are live.
    """
    counts = _registry_counts(request)
    registry = counts.get(request.app.state.pool)
    body = fold_overview(divisions_in_scope(conn, scope=user.division_code), registry,
                         open_alert_counts(conn, scope=user.division_code))
    alerts = map_alerts(conn, scope=user.division_code)
    body["map_alerts_total"] = alerts[0].pop("total") if alerts else 0
    for a in alerts[1:]:
        del a["total"]
    body["alerts"] = alerts
    body["registry_age_s"] = round(counts.age_s, 1)
    # Thousands of cells: serialised directly (the shape is the documented OverviewRead).
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/api/v1/dashboard/emergency", response_model=EmergencyPage)
def emergency(conn: Conn, user: CurrentUser, cursor: Annotated[str | None, Query(max_length=200)] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> EmergencyPage:
    """Open hazards that are critical or escalated above banner level: trapped passengers first, then most
    severe, unacknowledged, longest waiting; paged, with the totals of the whole console.

    Supervision matters (overdue inspections, registrations) never appear here: see /api/v1/alerts/supervision.
    """
    after = decode_key(cursor, "emergency", 5)
    rows = emergency_alerts(conn, scope=user.division_code, after=after, limit=limit)
    next_cursor = None
    if len(rows) == limit:
        last = rows[-1]
        next_cursor = encode_key("emergency", [not last["trapped"], last["severity_rank"], last["acknowledged"],
                                               last["opened_at"].isoformat(), last["id"]])
    counts = emergency_totals(conn, scope=user.division_code)
    return EmergencyPage(items=[EmergencyAlert(**r) for r in rows], next_cursor=next_cursor,
                         total=sum(c["n"] for c in counts), unacknowledged=sum(c["unacknowledged"] for c in counts),
                         trapped=sum(c["trapped"] for c in counts),
                         totals=SeverityTotals(**{c["severity"]: c["n"] for c in counts}))


@router.get("/api/v1/dashboard/escalations", response_model=list[NextEscalation])
def escalations(conn: Conn, user: CurrentUser) -> list[NextEscalation]:
    """When each open alert in your jurisdiction climbs next, unless someone acknowledges it first."""
    return [NextEscalation(**r) for r in next_escalations(conn, scope=user.division_code)]


@router.get("/api/v1/dashboard/equipment/{code}/live", response_model=EquipmentLive)
def live(code: Annotated[str, Path(max_length=32)], conn: Conn, user: CurrentUser) -> EquipmentLive:
    found = equipment_in_scope(conn, scope=user.division_code, code=code)
    if found is None:
        raise NotFound(f"equipment {code} is not in your jurisdiction's registry", ["path", "code"])
    equipment_id, category = found
    values = [LatestValue(**v, name_zh=getattr(METRICS_BY_KEY.get(v["metric"]), "name_zh", None))
              for v in latest_values(conn, equipment_id=equipment_id, category=category)]
    return EquipmentLive(values=values,
                         events=[EquipmentEvent(**e) for e in recent_events(conn, equipment_id=equipment_id)])


def _hub(request: Request) -> AlertHub:
    hub = getattr(request.app.state, "dashboard_alert_hub", None)
    if hub is None:
        hub = request.app.state.dashboard_alert_hub = AlertHub(request.app.state.settings.db.url)
    return hub


@router.get("/api/v1/dashboard/events", response_class=EventSourceResponse)
async def events(request: Request, user: CurrentUser) -> EventSourceResponse:
    """Server-sent events: ``ready``, then ``alert`` for every change of an alert in your jurisdiction.

    EventSource cannot send headers: pass the token as ``?access_token=``.
    """
    hub = _hub(request)

    async def stream() -> AsyncIterator[dict[str, Any]]:
        async with hub.subscribe(user.division_code) as sub:
            while True:
                kind, data = await sub.queue.get()
                yield {"event": kind, "data": orjson.dumps(data).decode()}

    return EventSourceResponse(stream(), ping=SSE_PING_S)
