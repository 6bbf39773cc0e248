"""Equipment endpoints, always within the caller's jurisdiction."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import Conn, CurrentUser
from api.equipment.models import EquipmentPage, EquipmentRead
from api.equipment.queries import get_equipment, list_equipment
from api.errors import NotFound
from api.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/api/v1/equipment", tags=["equipment"])

DivisionCode = Annotated[str | None, Query(pattern=r"^\d{6}$", description="region, league or banner code")]


@router.get("", response_model=EquipmentPage)
def list_(conn: Conn, user: CurrentUser, division: DivisionCode = None,
          category: Annotated[str | None, Query(pattern=r"^[123]000$")] = None,
          status: Annotated[str | None, Query(pattern=r"^(in_use|suspended|scrapped|cancelled)$")] = None,
          cursor: Annotated[str | None, Query(max_length=64)] = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> EquipmentPage:
    rows = list_equipment(conn, scope=user.division_code, division=division, category=category, status=status,
                          after=decode_cursor(cursor), limit=limit)
    items = [EquipmentRead(**r) for r in rows]
    return EquipmentPage(items=items, next_cursor=encode_cursor(items[-1].id) if len(items) == limit else None)


@router.get("/{code}", response_model=EquipmentRead)
def get(code: Annotated[str, Path(max_length=32)], conn: Conn, user: CurrentUser) -> EquipmentRead:
    row = get_equipment(conn, scope=user.division_code, code=code)
    if row is None:
        raise NotFound(f"equipment {code} is not in your jurisdiction's registry", ["path", "code"])
    return EquipmentRead(**row)
