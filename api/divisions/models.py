"""Divisions as the API reads them."""

from __future__ import annotations

from pydantic import BaseModel


class DivisionRead(BaseModel):
    """One division with its counts; banners carry their own, clients roll them up the tree."""

    code: str
    name: str
    name_en: str | None
    parent_code: str | None
    level: str
    equipment: int
    online: int
    inspections_overdue: int
    critical: int
    major: int
    minor: int
    warning: int
