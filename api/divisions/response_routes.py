"""Read and set a division's trapped-passenger arrival deadline (DOMAIN.md, Elevators; TSG T5002).

    GET /api/v1/divisions/{division_code}/response   anyone whose jurisdiction holds the division
    PUT /api/v1/divisions/{division_code}/response   administrators and region inspectors, within their jurisdiction
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from api.deps import Conn, CurrentUser, require
from api.divisions.arrival import division_response, set_arrival_deadline
from api.errors import NotFound, Unprocessable

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/divisions", tags=["divisions"])

SET_RESPONSE = ("administrator", "region_inspector")
Code = Annotated[str, Path(pattern=r"^\d{6}$", description="region, league or banner code (GB/T 2260)")]


class ResponseRead(BaseModel):
    code: str
    name: str
    level: str
    arrival_deadline_min: int | None = Field(description="set on this division; null: inherited")
    effective_arrival_deadline_min: int | None = Field(description="what applies here after inheritance")
    effective_from: str | None = Field(description="the division whose setting applies (this, its league, its region)")
    updated_by: str | None
    updated_at: datetime | None


class ResponseBody(BaseModel):
    arrival_deadline_min: int | None = Field(
        ge=1, le=24 * 60,
        description="minutes from the alarm until the maintenance unit must reach a trapped passenger; "
                    "null to inherit from the league, then the region")


def _read(conn: Conn, scope: str, code: str) -> ResponseRead:
    row = division_response(conn, scope=scope, code=code)
    if row is None:
        raise NotFound(f"division {code} not found in your jurisdiction", ["path", "division_code"])
    return ResponseRead(**row)


@router.get("/{division_code}/response", response_model=ResponseRead)
def get_response(division_code: Code, conn: Conn, user: CurrentUser) -> ResponseRead:
    """The arrival deadline that applies to trapped passengers in this division, and where it comes from."""
    return _read(conn, user.division_code, division_code)


@router.put("/{division_code}/response", response_model=ResponseRead, dependencies=[require(*SET_RESPONSE)])
def put_response(division_code: Code, body: ResponseBody, conn: Conn, user: CurrentUser) -> ResponseRead:
    """Set (or, with null, clear to inherit) this division's arrival deadline; open alerts follow at once."""
    with conn.transaction():
        current = _read(conn, user.division_code, division_code)
        if body.arrival_deadline_min is None and current.level == "region":
            raise Unprocessable("a region has nothing to inherit from: give arrival_deadline_min in minutes",
                                ["body", "arrival_deadline_min"])
        set_arrival_deadline(conn, code=division_code, minutes=body.arrival_deadline_min, actor=user.username)
    log.info("arrival deadline set", extra={"division": division_code, "minutes": body.arrival_deadline_min,
                                            "actor": user.username})
    return _read(conn, user.division_code, division_code)
