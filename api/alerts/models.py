"""Alerts as the API reads and changes them."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field, StrictBool, model_validator


class AlertRead(BaseModel):
    id: int
    equipment_code: str
    category: str
    rule_key: str
    kind: str
    world: str = Field(description="hazard (feed, emergency console) or supervision (the worklist)")
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
    shelved_until: datetime | None
    shelved_by: str | None
    assignee: str | None
    suppressed_by: str | None
    chattering: bool
    raise_count: int
    # Trapped passengers only: when the maintenance unit must have arrived (the division's response clock).
    arrival_deadline_at: datetime | None = None


class TransitionRead(BaseModel):
    at: datetime
    from_state: str | None
    to_state: str
    actor: str
    reason: str


class NoteRead(BaseModel):
    at: datetime
    author: str
    kind: str
    text: str


class AlertDetail(AlertRead):
    transitions: list[TransitionRead]
    comments: list[NoteRead]  # comments and assignments, oldest first


class SeverityTotals(BaseModel):
    critical: int = 0
    major: int = 0
    minor: int = 0
    warning: int = 0


class AlertPage(BaseModel):
    """One page of the feed, and what the whole list holds: a page never hides how many there are."""

    items: list[AlertRead]
    next_cursor: str | None
    total: int = Field(description="alerts matching every filter (the page shows len(items) of them)")
    unacknowledged: int = Field(description="of total, not yet acknowledged")
    totals: SeverityTotals = Field(description="per severity, under every filter except severity")


class SupervisionItem(AlertRead):
    due_on: date | None = Field(description="when the matter fell due (inspection date, registration deadline)")
    days_overdue: int | None = Field(description="days past due_on today in Asia/Shanghai")
    address: str | None
    unit_name: str | None
    unit_phone: str | None


class DivisionWorkload(BaseModel):
    division_code: str
    open: int
    unacknowledged: int
    oldest_due_on: date | None


class SupervisionPage(BaseModel):
    """The supervision worklist (overdue inspections, registrations): longest overdue first."""

    items: list[SupervisionItem]
    next_cursor: str | None
    total: int
    by_division: list[DivisionWorkload] = Field(description="open matters per banner of the jurisdiction")


class AlertActionBody(BaseModel):
    reason: str = Field("", max_length=2000)


class ShelveBody(BaseModel):
    reason: str = Field("", max_length=2000)
    minutes: int = Field(60, ge=1, le=7 * 24 * 60, description="how long the alert stays shelved (at most 7 days)")


class AssignBody(BaseModel):
    assignee: str = Field(min_length=1, max_length=100, description="username of the person handling it")


class CommentBody(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class RuleRead(BaseModel):
    key: str
    category: str
    kind: str
    metric: str
    direction: str
    severity: str
    limit: str  # e.g. "0.96 × rated_pressure" or "-50"
    low: str | None
    deadband: float
    on_delay_s: float
    off_delay_s: float
    window_s: float
    covered_by: list[str]
    message: str


class OverrideBody(BaseModel):
    """A per-equipment change of one rule; every field left out keeps the default rule's value."""

    limit_value: float | None = Field(None, allow_inf_nan=False)
    low_value: float | None = Field(None, allow_inf_nan=False)
    deadband: float | None = Field(None, ge=0, allow_inf_nan=False)
    on_delay_s: float | None = Field(None, ge=0, le=86400)
    off_delay_s: float | None = Field(None, ge=0, le=86400)
    enabled: StrictBool = True  # strict: 0 or "no" is refused, not read as false
    reason: str = Field(min_length=1, max_length=2000, description="why this equipment differs (audit)")

    @model_validator(mode="after")
    def _changes_something(self) -> OverrideBody:
        values = (self.limit_value, self.low_value, self.deadband, self.on_delay_s, self.off_delay_s)
        if self.enabled and all(v is None for v in values):
            raise ValueError("an override must change a value or set enabled=false; to go back to the default, "
                             "DELETE the override")
        return self


class OverrideRead(BaseModel):
    equipment_code: str
    rule_key: str
    limit_value: float | None
    low_value: float | None
    deadband: float | None
    on_delay_s: float | None
    off_delay_s: float | None
    enabled: bool
    reason: str
    updated_by: str
    updated_at: datetime
