"""Response-time records and per-division response statistics."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class EscalationRead(BaseModel):
    at: datetime
    from_level: str | None
    to_level: str
    notified_levels: list[str]
    actor: str
    reason: str


class ResponseRecord(BaseModel):
    alert_id: int
    severity: str
    category: str
    rule_key: str
    level: str
    division_code: str
    league_code: str
    opened_at: datetime
    first_notified_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    seconds_to_first_notification: float | None
    seconds_to_acknowledge: float | None
    seconds_to_resolve: float | None
    seconds_at_level: dict[str, float]  # banner / league / region, until acknowledged, resolved or now
    escalations: list[EscalationRead]


class DivisionResponseStats(BaseModel):
    division_code: str
    alerts: int
    notified: int
    acknowledged: int
    acknowledged_within: int
    share_acknowledged_within: float | None  # of all alerts in the period; None when there were none
    median_seconds_to_acknowledge: float | None
    p90_seconds_to_acknowledge: float | None
    median_seconds_to_first_notification: float | None
    resolved: int
    reached_league: int
    reached_region: int


class ResponseStats(BaseModel):
    ack_within_s: int
    since: datetime | None
    until: datetime | None
    divisions: list[DivisionResponseStats]
