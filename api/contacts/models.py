"""Contacts (on-duty people and emergency teams) and their channels."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, Field, StrictBool, model_validator

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^https?://[^\s]+$")


class ChannelWrite(BaseModel):
    channel: Literal["webhook", "sms", "email"]
    address: str = Field(min_length=3, max_length=2000, description="URL (webhook, sms gateway) or e-mail address")
    template: str | None = Field(None, max_length=2000,
                                 description="sms only: the gateway's body with {summary}, {status}, {count}, "
                                             "{severity}, {division_code}, {level}, {equipment_code}, {message}, "
                                             "{idempotency_key}")

    @model_validator(mode="after")
    def _address_fits_channel(self) -> Self:
        if self.channel == "email" and not _EMAIL.match(self.address):
            raise ValueError(f"address {self.address!r} is not an e-mail address (name@domain)")
        if self.channel in ("webhook", "sms") and not _URL.match(self.address):
            raise ValueError(f"address {self.address!r} of a {self.channel} channel must be an http(s) URL")
        if self.template is not None and self.channel != "sms":
            raise ValueError("only sms channels take a template; a webhook always sends Alertmanager v4 JSON")
        return self


class ChannelRead(ChannelWrite):
    id: int


class ContactWrite(BaseModel):
    division_code: str = Field(pattern=r"^\d{6}$")
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["duty_officer", "inspector", "emergency_team", "maintenance"]
    on_duty: StrictBool = True  # strict: 0 or "no" is refused, not read as false
    categories: list[str] | None = Field(None, max_length=10, description="equipment categories handled; null: all")
    min_severity: Literal["critical", "major", "minor", "warning"] = "warning"
    channels: list[ChannelWrite] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _categories_are_codes(self) -> Self:
        for c in self.categories or ():
            if not re.fullmatch(r"[0-9A-Z]{4}", c):
                raise ValueError(f"category {c!r} is not a 4-character equipment category code (e.g. 3000)")
        return self


class ContactRead(BaseModel):
    id: int
    division_code: str
    name: str
    kind: str
    on_duty: bool
    categories: list[str] | None
    min_severity: str
    channels: list[ChannelRead]
    created_at: datetime
    updated_at: datetime


class DutyBody(BaseModel):
    on_duty: StrictBool
