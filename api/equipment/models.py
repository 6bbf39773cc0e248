"""Equipment as the API reads it."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel


class EquipmentRead(BaseModel):
    id: int
    code: str
    category: str
    variety: str
    registration_no: str | None
    unit_name: str | None
    banner_code: str
    league_code: str | None
    lat: float | None
    lon: float | None
    address: str | None
    rated: dict[str, float]
    status: str
    last_inspection_on: date | None
    next_inspection_on: date | None
    gateway_id: str | None
    online: bool | None


class EquipmentPage(BaseModel):
    items: list[EquipmentRead]
    next_cursor: str | None
