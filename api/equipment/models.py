"""Equipment as the API reads and writes it; the rules live in `safewatch.registry.records`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from safewatch.registry.records import (
    GATEWAY_ID,
    EquipmentRecord,
    EquipmentStatus,
    IsoDate,
    StrictModel,
    Text100,
    Text200,
)


class EquipmentCreate(EquipmentRecord):
    """A new equipment. Category and variety follow from the code unless given; rated keys per category."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "code": "311015123201500001", "variety": "3110", "registration_no": "梯11蒙A00001(24)",
        "unit_uscc": "91110000600037341L", "banner_code": "150102", "lat": 40.84, "lon": 111.75,
        "rated": {"rated_speed": 1.75, "rated_load": 1000, "floors": 18}, "status": "in_use",
        "last_inspection_on": "2026-03-01", "next_inspection_on": "2027-03-01"}]})


class EquipmentUpdate(StrictModel):
    """Fields to change (absent: unchanged; null: cleared). The merged record is checked as a whole."""

    variety: str | None = Field(None, min_length=4, max_length=4)
    registration_no: str | None = Field(None, max_length=32)
    unit_uscc: str | None = Field(None, min_length=18, max_length=18)
    banner_code: str | None = Field(None, pattern=r"^\d{6}$")
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    address: Text200 | None = None
    manufacturer: Text100 | None = None
    model: Text100 | None = None
    manufactured_on: IsoDate | None = None
    commissioned_on: IsoDate | None = None
    rated: dict[str, float] | None = Field(None, max_length=16)
    status: Literal["in_use", "suspended"] | None = Field(None, description="retire with POST …/retire")
    last_inspection_on: IsoDate | None = None
    next_inspection_on: IsoDate | None = None
    gateway_id: str | None = Field(None, pattern=GATEWAY_ID)
    rescue_code: str | None = Field(None, pattern=r"^\d{6}$")
    reason: str | None = Field(None, max_length=500, description="kept in the audit trail")


class RetireBody(StrictModel):
    """Take equipment out of service for good: 报废 (scrapped) or 注销 (cancelled)."""

    status: Literal["scrapped", "cancelled"]
    reason: str = Field(min_length=1, max_length=500)


class EquipmentRead(BaseModel):
    id: int
    code: str
    category: str
    variety: str
    registration_no: str | None
    unit_uscc: str | None
    unit_name: str | None
    banner_code: str
    league_code: str | None
    lat: float | None
    lon: float | None
    address: str | None
    manufacturer: str | None
    model: str | None
    manufactured_on: date | None
    commissioned_on: date | None
    rated: dict[str, float]
    status: EquipmentStatus
    last_inspection_on: date | None
    next_inspection_on: date | None
    gateway_id: str | None
    rescue_code: str | None
    online: bool | None
    updated_at: datetime
    retired_at: datetime | None


class EquipmentPage(BaseModel):
    items: list[EquipmentRead]
    next_cursor: str | None


class AuditEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    changes: dict[str, Any]


class DivisionSummary(BaseModel):
    """Counts over a division and everything under it."""

    code: str
    name: str
    level: str
    parent_code: str | None
    total: int
    in_use: int
    suspended: int
    scrapped: int
    cancelled: int
    boilers: int
    pressure_vessels: int
    elevators: int
    online: int
    offline: int
    unbound: int
    inspection_overdue: int
    inspection_due_30d: int


class ImportReport(BaseModel):
    """A committed import (a refused one is a 422 listing every bad row: line, field, reason)."""

    rows: int
    inserted: int
    committed: bool
    errors_total: int
    errors: list[dict[str, Any]]
