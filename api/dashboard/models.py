"""What the dashboard's own endpoints return."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.alerts.models import SeverityTotals
from api.divisions.models import DivisionRead


class MapAlert(BaseModel):
    id: int
    severity: str
    lat: float
    lon: float
    equipment_code: str


class OverviewRead(BaseModel):
    divisions: list[DivisionRead]
    cells: list[tuple[float, float, str, int, int]] = Field(
        description="map cells of 0.1°: [lat, lon, league_code, equipment, offline]")
    alerts: list[MapAlert] = Field(description="open hazards on the map, most severe first (at most 2000)")
    map_alerts_total: int = Field(0, description="open hazards with a position: alerts holds the first 2000")
    registry_age_s: float = Field(description="age of the equipment/online/overdue counts (alerts are live)")


class EmergencyAlert(BaseModel):
    id: int
    equipment_code: str
    category: str
    rule_key: str
    severity: str
    state: str
    active: bool
    latched: bool
    level: str
    division_code: str
    division_name: str
    division_name_en: str | None
    league_code: str
    message: str
    opened_at: datetime
    address: str | None
    lat: float | None
    lon: float | None
    unit_name: str | None
    safety_manager: str | None
    unit_phone: str | None
    trapped: bool
    next_escalation_at: datetime | None
    next_level: str | None
    # Trapped passengers only: when the maintenance unit must have arrived (the division's response clock).
    arrival_deadline_at: datetime | None = None


class EmergencyPage(BaseModel):
    """One page of the emergency console and what the whole console holds."""

    items: list[EmergencyAlert]
    next_cursor: str | None
    total: int
    unacknowledged: int
    trapped: int
    totals: SeverityTotals


class NextEscalation(BaseModel):
    """The escalation notifier's next pending climb of an open alert."""

    alert_id: int
    next_escalation_at: datetime
    next_level: str | None


class LatestValue(BaseModel):
    metric: str
    name_zh: str | None
    unit: str
    value: float
    time: datetime


class EquipmentEvent(BaseModel):
    time: datetime
    type: str
    active: bool
    details: dict[str, Any]


class EquipmentLive(BaseModel):
    """The latest value of each metric (last 24 h) and the latest discrete events."""

    values: list[LatestValue]
    events: list[EquipmentEvent]
