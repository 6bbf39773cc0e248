"""User-unit endpoints: list, read, create, update, retire — within the caller's jurisdiction."""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query
from psycopg.rows import DictRow

from api.deps import WRITE_REGISTRY, Conn, CurrentUser, require
from api.errors import NotFound, responses
from api.pagination import decode_cursor, encode_cursor
from api.registry_audit import record_change
from api.units import queries as q
from api.units.models import RetireUnit, UnitCreate, UnitPage, UnitRead, UnitUpdate
from safewatch.db import one_row
from safewatch.registry.records import changes

router = APIRouter(prefix="/api/v1/units", tags=["units"])

Uscc = Annotated[str, Path(pattern=r"^[0-9A-Za-z]{18}$", description="统一社会信用代码")]


def check_division(conn: psycopg.Connection[DictRow], *, scope: str, code: str, field: str = "division_code") -> None:
    """422 for a division the registry lacks, 403 for one outside the caller's jurisdiction."""
    in_scope = q.division_scope(conn, scope=scope, code=code)
    if in_scope is None:
        raise HTTPException(422, detail=[{"msg": f"division {code} is not in the registry; load it with "
                                          "`safewatch load-divisions` or fix the code", "loc": ["body", field],
                                          "type": "unknown"}])
    if not in_scope:
        raise HTTPException(403, detail=[{"msg": f"division {code} is outside your jurisdiction",
                                          "loc": ["body", field], "type": "forbidden"}])


def audit(conn: psycopg.Connection[DictRow], key: str, actor: str, action: str, what: dict[str, Any]) -> None:
    record_change(conn, "unit", key, actor, action, what)


def _get_or_404(conn: psycopg.Connection[DictRow], scope: str, uscc: str) -> UnitRead:
    row = q.get_unit(conn, scope=scope, uscc=uscc.upper())
    if row is None:
        raise NotFound(f"user unit {uscc} is not in your jurisdiction's registry", ["path", "uscc"])
    return UnitRead(**row)


def _for_update(conn: psycopg.Connection[DictRow], scope: str, uscc: str) -> dict[str, Any]:
    """The unit's row, locked until the transaction ends; 404 when it is not in the caller's jurisdiction."""
    row = conn.execute(q.SELECT_UNIT_FOR_UPDATE, {"scope": scope, "uscc": uscc.upper()}).fetchone()
    if row is None:
        raise NotFound(f"user unit {uscc} is not in your jurisdiction's registry", ["path", "uscc"])
    return row


@router.get("", response_model=UnitPage)
def list_(conn: Conn, user: CurrentUser,
          division: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
          q_: Annotated[str | None, Query(alias="q", min_length=2, max_length=64, pattern=r"^[^\x00-\x1f%_\\]+$",
                                          description="part of the name, or the start of the USCC")] = None,
          include_retired: bool = False,
          cursor: Annotated[str | None, Query(max_length=64)] = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> UnitPage:
    rows = q.list_units(conn, scope=user.division_code, division=division,
                        q=f"%{q_}%" if q_ else None, prefix=f"{q_}%" if q_ else None,
                        include_retired=include_retired, after=decode_cursor(cursor), limit=limit)
    return UnitPage(items=[UnitRead(**r) for r in rows],
                    next_cursor=encode_cursor(rows[-1]["id"]) if len(rows) == limit else None)


@router.post("", responses=responses(409),
             response_model=UnitRead, status_code=201, dependencies=[require(*WRITE_REGISTRY)])
def create(body: UnitCreate, conn: Conn, user: CurrentUser) -> UnitRead:
    with conn.transaction():
        check_division(conn, scope=user.division_code, code=body.division_code)
        try:
            with conn.transaction():
                conn.execute(q.INSERT_UNIT, body.model_dump())
        except psycopg.errors.UniqueViolation:
            raise HTTPException(409, detail=[{"msg": f"a user unit with USCC {body.uscc} is already registered",
                                              "loc": ["body", "uscc"], "type": "duplicate"}]) from None
        audit(conn, body.uscc, user.username, "create", body.model_dump(exclude_none=True))
    return _get_or_404(conn, user.division_code, body.uscc)


@router.get("/{uscc}", response_model=UnitRead)
def get(uscc: Uscc, conn: Conn, user: CurrentUser) -> UnitRead:
    return _get_or_404(conn, user.division_code, uscc)


@router.patch("/{uscc}", response_model=UnitRead, dependencies=[require(*WRITE_REGISTRY)])
def update(uscc: Uscc, body: UnitUpdate, conn: Conn, user: CurrentUser) -> UnitRead:
    with conn.transaction():
        current = _for_update(conn, user.division_code, uscc)
        patch = body.model_dump(exclude_unset=True)
        reason = patch.pop("reason", None)
        for required in ("name", "division_code"):
            if required in patch and patch[required] is None:
                raise HTTPException(422, detail=[{"msg": f"a unit's {required} cannot be cleared",
                                                  "loc": ["body", required], "type": "missing"}])
        if "division_code" in patch:
            check_division(conn, scope=user.division_code, code=patch["division_code"])
        before = {k: current[k] for k in ("name", "division_code", "address", "safety_manager", "phone")}
        after = {**before, **patch}
        diff = changes(before, after)
        if diff:
            conn.execute(q.UPDATE_UNIT, {**after, "id": current["id"]})
            audit(conn, current["uscc"], user.username, "update", {**diff, **({"reason": reason} if reason else {})})
    return _get_or_404(conn, user.division_code, uscc)


@router.post("/{uscc}/retire", responses=responses(409),
             response_model=UnitRead, dependencies=[require(*WRITE_REGISTRY)])
def retire(uscc: Uscc, body: RetireUnit, conn: Conn, user: CurrentUser) -> UnitRead:
    """Retire a unit that has no equipment in use or suspended (transfer or retire those first)."""
    with conn.transaction():
        current = _for_update(conn, user.division_code, uscc)
        if current["retired_at"] is not None:
            raise HTTPException(409, detail=[{"msg": f"user unit {uscc} is already retired", "loc": ["path", "uscc"],
                                              "type": "retired"}])
        live = one_row(conn.execute(q.COUNT_LIVE_EQUIPMENT, (current["id"],)))["n"]
        if live:
            raise HTTPException(409, detail=[{"msg": f"user unit {uscc} still has {live} equipment in use or "
                                              "suspended; transfer (PATCH unit_uscc) or retire them first",
                                              "loc": ["path", "uscc"], "type": "in_use"}])
        conn.execute(q.RETIRE_UNIT, (current["id"],))
        audit(conn, current["uscc"], user.username, "retire", {"reason": body.reason})
    return _get_or_404(conn, user.division_code, uscc)
