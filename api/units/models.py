"""User units (使用单位) as the API reads and writes them; rules in `safewatch.registry.records`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from safewatch.registry.records import StrictModel, Text100, Text200, UnitRecord


class UnitCreate(UnitRecord):
    """A new user unit; its USCC must carry a valid GB 32100 check character."""


class UnitUpdate(StrictModel):
    """Fields to change (absent: unchanged; null: cleared where the field is optional)."""

    name: Text200 | None = None
    division_code: str | None = Field(None, pattern=r"^\d{6}$")
    address: Text200 | None = None
    safety_manager: Text100 | None = None
    phone: str | None = Field(None, pattern=r"^\+?[0-9][0-9 ()-]{4,24}$")
    reason: str | None = Field(None, max_length=500)


class RetireUnit(StrictModel):
    reason: str = Field(min_length=1, max_length=500)


class UnitRead(BaseModel):
    uscc: str
    name: str
    division_code: str
    address: str | None
    safety_manager: str | None
    phone: str | None
    equipment: int
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None


class UnitPage(BaseModel):
    items: list[UnitRead]
    next_cursor: str | None
