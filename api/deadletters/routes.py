"""Dead letters: list and read them within the jurisdiction; re-run them once the cause is fixed.

Administrators and region inspectors only: they fix registry data and gateway configuration.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from api.deadletters.models import (
    DeadLetterPage,
    DeadLetterRead,
    ReprocessBody,
    ReprocessOutcome,
    ReprocessResult,
)
from api.deadletters.queries import get_dead_letter, list_dead_letters, lock_for_reprocess
from api.deps import Conn, CurrentUser, require
from api.errors import NotFound
from api.pagination import decode_cursor, encode_cursor
from ingest.deadletters import reprocess, rows_from

HANDLE_DEAD_LETTERS = ("administrator", "region_inspector")
router = APIRouter(prefix="/api/v1/deadletters", tags=["dead letters"], dependencies=[require(*HANDLE_DEAD_LETTERS)])


@router.get("", response_model=DeadLetterPage)
def list_(conn: Conn, user: CurrentUser,
          reason: Annotated[str | None, Query(pattern=r"^[a-z_]{1,64}$")] = None,
          gateway: Annotated[str | None, Query(max_length=64)] = None,
          pending: Annotated[bool | None, Query(description="true: not yet re-processed")] = None,
          cursor: Annotated[str | None, Query(max_length=64)] = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> DeadLetterPage:
    rows = list_dead_letters(conn, scope=user.division_code, reason=reason, gateway=gateway, pending=pending,
                             before=decode_cursor(cursor), limit=limit)
    items = [DeadLetterRead(**r) for r in rows]
    return DeadLetterPage(items=items, next_cursor=encode_cursor(items[-1].id) if len(items) == limit else None)


# `:int` keeps /reprocess off this route: GET /reprocess is a 405, not a 422 about the id.
@router.get("/{dead_letter_id:int}", response_model=DeadLetterRead)
def get(dead_letter_id: Annotated[int, Path(ge=1, le=2**62)], conn: Conn, user: CurrentUser) -> DeadLetterRead:
    row = get_dead_letter(conn, scope=user.division_code, dead_letter_id=dead_letter_id)
    if row is None:
        raise NotFound(f"dead letter {dead_letter_id} is not in your jurisdiction", ["path", "dead_letter_id"])
    return DeadLetterRead(**row)


@router.post("/reprocess", response_model=ReprocessResult)
def reprocess_(body: ReprocessBody, request: Request, conn: Conn, user: CurrentUser) -> ReprocessResult:
    """Re-run pending dead letters (by id, or all matching ``reason``/``gateway``) through the ingest."""
    with conn.transaction():
        rows = rows_from(lock_for_reprocess(conn, scope=user.division_code, ids=body.ids, reason=body.reason,
                                            gateway=body.gateway, limit=body.limit))
        outcomes = reprocess(conn, rows, actor=user.username, cfg=request.app.state.settings.ingest)
    done = {o.id for o in outcomes}
    return ReprocessResult(outcomes=[ReprocessOutcome(id=o.id, result=o.result, readings_stored=o.readings_stored,
                                                      reasons=list(o.reasons)) for o in outcomes],
                           skipped=[i for i in body.ids if i not in done])
