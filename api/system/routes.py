"""Alerts about SafeWatch itself (e.g. a failing TimescaleDB job): for those who run the whole deployment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Conn, CurrentUser, require
from api.errors import Forbidden
from api.kpis.queries import division_level
from api.system.models import SystemAlertRead
from api.system.queries import system_alerts

SEE_SYSTEM_ALERTS = ("administrator", "region_inspector")
router = APIRouter(prefix="/api/v1/system", tags=["system"], dependencies=[require(*SEE_SYSTEM_ALERTS)])


@router.get("/alerts", response_model=list[SystemAlertRead])
def list_alerts(conn: Conn, user: CurrentUser,
                cleared: Annotated[bool, Query(description="include the cleared alerts")] = False,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[SystemAlertRead]:
    """The open system alerts (and with ``cleared``, the cleared ones after them)."""
    if division_level(conn, user.division_code) != "region":
        raise Forbidden("system alerts concern the whole deployment; ask someone bound to the region (自治区)")
    return [SystemAlertRead(**row) for row in system_alerts(conn, include_cleared=cleared, limit=limit)]
