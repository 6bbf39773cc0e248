"""Dead letters as the API shows them, and the re-processing request and result."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field


class DeadLetterRead(BaseModel):
    id: int
    received_at: datetime
    topic: str
    gateway_id: str | None
    equipment_code: str | None
    reason: str
    detail: str
    payload: str = Field(description="The raw payload as text (UTF-8; undecodable bytes replaced), cut to 4 KiB "
                                     "in lists; GET /api/v1/deadletters/{id} gives it whole")
    payload_bytes: int
    reprocessed_at: datetime | None
    reprocessed_by: str | None
    reprocess_result: str | None
    retry_of: int | None


class DeadLetterPage(BaseModel):
    items: list[DeadLetterRead]
    next_cursor: str | None


class ReprocessBody(BaseModel):
    """Which dead letters to re-run: explicit ids, or everything pending matching the filters."""

    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(default_factory=list, max_length=1000)
    reason: str | None = Field(None, pattern=r"^[a-z_]{1,64}$")
    gateway: str | None = Field(None, max_length=64)
    limit: int = Field(1000, ge=1, le=1000)


class ReprocessOutcome(BaseModel):
    id: int
    result: str
    readings_stored: int
    reasons: list[str]


class ReprocessResult(BaseModel):
    outcomes: list[ReprocessOutcome]
    skipped: list[int] = Field(description="requested ids not re-run: already re-processed, outside your "
                                           "jurisdiction, or unknown")
