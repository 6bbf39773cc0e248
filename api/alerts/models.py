"""Alerts as the API reads and changes them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class AlertRead(BaseModel):
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
    league_code: str
    metric: str | None
    value: float | None
    limit_value: float | None
    message: str
    opened_at: datetime
    updated_at: datetime
    cleared_at: datetime | None
    closed_at: datetime | None


class TransitionRead(BaseModel):
    at: datetime
    from_state: str | None
    to_state: str
    actor: str
    reason: str


class AlertDetail(AlertRead):
    transitions: list[TransitionRead]


class AlertPage(BaseModel):
    items: list[AlertRead]
    next_cursor: str | None


class AlertActionBody(BaseModel):
    reason: str = Field("", max_length=2000)
