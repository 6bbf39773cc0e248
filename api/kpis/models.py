"""Alarm-load KPIs (EEMUA 191 / ISA-18.2) as the API returns them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class RuleCount(BaseModel):
    rule_key: str
    count: int
    equipment: int  # distinct equipment that raised it


class DivisionKpis(BaseModel):
    division_code: str
    alerts: int  # alerts opened in the window (all, including suppressed by design)
    annunciated: int  # of which shown to people (opened as active_unack)
    alerts_per_hour: float  # annunciated / window hours (EEMUA: ≈ 6 per hour per operator is manageable)
    peak_10min: int  # most annunciated alerts in one 10-minute interval
    floods: int  # flood periods (> 10 alerts in 10 min) that started in the window
    flood_minutes: float
    chattering: int  # alerts opened in the window that chattered (≥ 3 transitions a minute)
    standing: int  # open and in view now
    stale: int  # open, active and older than ``stale_hours``
    shelved: int  # shelved now
    top_rules: list[RuleCount]


class KpiReport(BaseModel):
    since: datetime
    until: datetime
    window_hours: float
    stale_hours: float
    group_level: str  # the level the divisions are grouped at (league or banner)
    divisions: list[DivisionKpis]
    top_rules: list[RuleCount]  # the ten noisiest rules over the whole jurisdiction
