"""Escalation policies as the API reads and writes them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Severity = Literal["critical", "major", "minor", "warning"]
LevelName = Literal["banner", "league", "region"]
WEEK_S = 7 * 24 * 3600


class PolicyWrite(BaseModel):
    severity: Severity
    category: str | None = Field(None, pattern=r"^[0-9A-Z]{4}$",
                                 description="equipment category (1000 boiler, 2000 vessel, 3000 elevator); "
                                             "null: the severity's default")
    open_levels: list[LevelName] = Field(min_length=1, max_length=3, description="levels notified at opening")
    max_level: LevelName = Field(description="the highest level the alert climbs to while unacknowledged")
    banner_ack_s: int = Field(ge=1, le=WEEK_S, description="seconds the banner has before it climbs to the league")
    league_ack_s: int = Field(ge=1, le=WEEK_S, description="seconds the league has before it climbs to the region")
    renotify_s: int | None = Field(None, ge=1, le=WEEK_S, description="re-send every so often while "
                                                                       "unacknowledged; null: never")


class PolicyRead(PolicyWrite):
    id: int
    updated_at: datetime
    updated_by: str
