"""Contacts: on-duty people and emergency teams per division, with their channels.

Everyone reads the contacts of their jurisdiction; inspectors and administrators keep them, only
within their jurisdiction (a league keeps its banners' rosters too).
"""

from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Path, Query, Response
from psycopg.rows import DictRow

from api.contacts import queries as q
from api.contacts.models import ContactRead, ContactWrite, DutyBody
from api.deps import Conn, CurrentUser, require
from api.errors import Conflict, Forbidden, NotFound, Unprocessable, responses

router = APIRouter(prefix="/api/v1/contacts", tags=["escalation"])
KEEP_CONTACTS = ("administrator", "region_inspector", "league_inspector", "banner_inspector")
ContactId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _or_404(conn: psycopg.Connection[DictRow], scope: str, contact_id: int) -> ContactRead:
    row = q.get_contact(conn, scope=scope, contact_id=contact_id)
    if row is None:
        raise NotFound(f"contact {contact_id} is not in your jurisdiction", ["path", "contact_id"])
    return ContactRead(**row)


def _check_division(conn: psycopg.Connection[DictRow], scope: str, code: str) -> None:
    if not q.division_exists(conn, code):
        raise Unprocessable(f"division {code} does not exist; use a code from GET /api/v1/divisions",
                            ["body", "division_code"])
    if not q.division_in_scope(conn, scope=scope, code=code):
        raise Forbidden(f"division {code} is outside your jurisdiction", ["body", "division_code"])


def _save(conn: psycopg.Connection[DictRow], body: ContactWrite, contact_id: int | None) -> int:
    fields = body.model_dump(exclude={"channels"})
    channels = [c.model_dump() for c in body.channels]
    try:
        with conn.transaction():
            return q.save_contact(conn, contact_id=contact_id, fields=fields, channels=channels)
    except psycopg.errors.UniqueViolation:
        raise Conflict("the same channel and address is listed twice; list each once", ["body", "channels"]) from None


@router.get("", response_model=list[ContactRead])
def list_(conn: Conn, user: CurrentUser, division: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
          on_duty: bool | None = None) -> list[ContactRead]:
    rows = q.list_contacts(conn, scope=user.division_code, division=division, on_duty=on_duty)
    return [ContactRead(**r) for r in rows]


@router.get("/{contact_id}", response_model=ContactRead)
def get(contact_id: ContactId, conn: Conn, user: CurrentUser) -> ContactRead:
    return _or_404(conn, user.division_code, contact_id)


@router.post("", responses=responses(409),
             response_model=ContactRead, status_code=201, dependencies=[require(*KEEP_CONTACTS)])
def create(body: ContactWrite, conn: Conn, user: CurrentUser) -> ContactRead:
    _check_division(conn, user.division_code, body.division_code)
    return _or_404(conn, user.division_code, _save(conn, body, None))


@router.put("/{contact_id}", responses=responses(409),
            response_model=ContactRead, dependencies=[require(*KEEP_CONTACTS)])
def update(contact_id: ContactId, body: ContactWrite, conn: Conn, user: CurrentUser) -> ContactRead:
    _or_404(conn, user.division_code, contact_id)
    _check_division(conn, user.division_code, body.division_code)
    return _or_404(conn, user.division_code, _save(conn, body, contact_id))


@router.put("/{contact_id}/duty", response_model=ContactRead, dependencies=[require(*KEEP_CONTACTS)])
def set_duty(contact_id: ContactId, body: DutyBody, conn: Conn, user: CurrentUser) -> ContactRead:
    """Put a contact on or off duty (the roster changes more often than the contact)."""
    _or_404(conn, user.division_code, contact_id)
    q.set_duty(conn, contact_id, body.on_duty)
    return _or_404(conn, user.division_code, contact_id)


@router.delete("/{contact_id}", status_code=204, dependencies=[require(*KEEP_CONTACTS)])
def delete(contact_id: ContactId, conn: Conn, user: CurrentUser) -> Response:
    _or_404(conn, user.division_code, contact_id)
    q.delete_contact(conn, contact_id)
    return Response(status_code=204)
