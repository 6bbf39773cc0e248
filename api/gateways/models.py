"""Gateways as the API reads and writes them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from safewatch.registry.records import GatewayRecord, StrictModel, Text100


class GatewayCreate(GatewayRecord):
    """A new gateway, registered with its league; the response carries its broker password once."""


class GatewayUpdate(StrictModel):
    name: Text100 | None = None
    reason: str | None = Field(None, max_length=500)


class RetireGateway(StrictModel):
    reason: str = Field(min_length=1, max_length=500)


class GatewayRead(BaseModel):
    id: str
    league_code: str
    name: str | None
    equipment: int
    online: bool | None
    status_since: datetime | None
    topic_prefix: str
    has_credentials: bool
    created_at: datetime
    updated_at: datetime
    credentials_rotated_at: datetime | None
    retired_at: datetime | None


class GatewayCredentials(BaseModel):
    """Shown once: the broker stores only the hash. Regenerate the broker files to apply it."""

    gateway: GatewayRead
    mqtt_username: str
    mqtt_password: str


class GatewayPage(BaseModel):
    items: list[GatewayRead]
    next_cursor: str | None
