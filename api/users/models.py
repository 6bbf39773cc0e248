"""People as the API reads and writes them (administrators only)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from safewatch.registry.records import StrictModel, Text100

Role = Literal["region_inspector", "league_inspector", "banner_inspector", "emergency_responder", "registry_clerk",
               "administrator"]
USERNAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$"
# An inspector's role names the level of the one division they are bound to.
ROLE_LEVEL: dict[str, str] = {"region_inspector": "region", "league_inspector": "league",
                              "banner_inspector": "banner"}


class UserCreate(StrictModel):
    username: str = Field(pattern=USERNAME)
    password: str = Field(min_length=12, max_length=128, description="stored as an Argon2id hash")
    role: Role
    division_code: str = Field(pattern=r"^\d{6}$", description="the one division this person's jurisdiction covers")
    display_name: Text100 | None = None


class UserUpdate(StrictModel):
    password: str | None = Field(None, min_length=12, max_length=128)
    role: Role | None = None
    division_code: str | None = Field(None, pattern=r"^\d{6}$")
    display_name: Text100 | None = None
    reason: str | None = Field(None, max_length=500)


class RetireUser(StrictModel):
    reason: str = Field(min_length=1, max_length=500)


class UserRead(BaseModel):
    username: str
    role: Role
    division_code: str
    display_name: str | None
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None


class UserPage(BaseModel):
    items: list[UserRead]
    next_cursor: str | None
