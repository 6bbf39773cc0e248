"""A chart's data: one series per metric, points of [time, avg, min, max]."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class Series(BaseModel):
    metric: str
    unit: str
    points: list[tuple[datetime, float, float, float]] = Field(
        description="[time, avg, min, max]; at raw resolution the three values are the reading itself")


class Chart(BaseModel):
    equipment: str
    resolution: str = Field(description="readings | readings_1m | readings_1h: chosen from the span")
    start: datetime
    end: datetime
    series: list[Series]
