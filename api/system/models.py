"""Alerts about SafeWatch itself (schema 041) as the API returns them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class SystemAlertRead(BaseModel):
    id: int
    source: str  # what watches, e.g. timescale_jobs
    key: str  # what is faulty within the source, e.g. policy_refresh_continuous_aggregate
    severity: str
    message: str  # what happened and what to do
    details: dict[str, Any]
    opened_at: datetime
    last_seen_at: datetime
    cleared_at: datetime | None
