"""Escalation policies: read by everyone logged in, edited by the region (they bind every league)."""

from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Path, Response
from psycopg.rows import DictRow

from alerts.escalation import EscalationPolicy, Level, PolicyError
from api.deps import Conn, CurrentUser, require
from api.errors import Conflict, Forbidden, NotFound, Unprocessable, responses
from api.policies import queries as q
from api.policies.models import PolicyRead, PolicyWrite

router = APIRouter(prefix="/api/v1/escalation-policies", tags=["escalation"])
EDIT_POLICIES = ("administrator", "region_inspector")
PolicyId = Annotated[int, Path(ge=1, le=2**31 - 1)]
SELECT_DIVISION_LEVEL = "SELECT level FROM divisions WHERE code = %s"


def _region_level(conn: psycopg.Connection[DictRow], user: CurrentUser) -> None:
    """Policies bind every league: an administrator bound to a league or banner may not change them."""
    row = conn.execute(SELECT_DIVISION_LEVEL, (user.division_code,)).fetchone()
    if row is None or row["level"] != "region":
        raise Forbidden("escalation policies apply to the whole region; ask someone bound to the region "
                        "(自治区) to change them")


def _checked(body: PolicyWrite) -> dict[str, object]:
    """Run the core's own consistency checks, so the API refuses what the notifier could not apply."""
    try:
        EscalationPolicy(body.severity, body.category, frozenset(Level(x) for x in body.open_levels),
                         Level(body.max_level), body.banner_ack_s, body.league_ack_s, body.renotify_s)
    except PolicyError as exc:
        raise Unprocessable(str(exc), ["body", exc.field]) from None
    return {**body.model_dump(), "open_levels": sorted(set(body.open_levels), key=lambda x: Level(x).rank)}


def _duplicate(body: PolicyWrite) -> Conflict:
    which = f"category {body.category}" if body.category else "the default"
    return Conflict(f"a {body.severity} policy for {which} exists already; edit it with PUT instead",
                    ["body", "category"])


@router.get("", response_model=list[PolicyRead])
def list_(conn: Conn, _user: CurrentUser) -> list[PolicyRead]:
    return [PolicyRead(**r) for r in q.list_policies(conn)]


@router.post("", responses=responses(409),
             response_model=PolicyRead, status_code=201, dependencies=[require(*EDIT_POLICIES)])
def create(body: PolicyWrite, conn: Conn, user: CurrentUser) -> PolicyRead:
    _region_level(conn, user)
    try:
        with conn.transaction():
            return PolicyRead(**q.insert_policy(conn, **_checked(body), actor=user.username))
    except psycopg.errors.UniqueViolation:
        raise _duplicate(body) from None


@router.put("/{policy_id}", responses=responses(409), response_model=PolicyRead, dependencies=[require(*EDIT_POLICIES)])
def update(policy_id: PolicyId, body: PolicyWrite, conn: Conn, user: CurrentUser) -> PolicyRead:
    _region_level(conn, user)
    current = q.get_policy(conn, policy_id)
    if current is None:
        raise NotFound(f"escalation policy {policy_id} does not exist", ["path", "policy_id"])
    if current["category"] is None and (body.category is not None or body.severity != current["severity"]):
        raise Conflict("a severity's default policy keeps its severity and no category; create a category "
                       "policy with POST instead", ["body", "category"])
    try:
        with conn.transaction():
            row = q.update_policy(conn, **_checked(body), id=policy_id, actor=user.username)
    except psycopg.errors.UniqueViolation:
        raise _duplicate(body) from None
    assert row is not None
    return PolicyRead(**row)


@router.delete("/{policy_id}", responses=responses(409), status_code=204, dependencies=[require(*EDIT_POLICIES)])
def delete(policy_id: PolicyId, conn: Conn, user: CurrentUser) -> Response:
    _region_level(conn, user)
    current = q.get_policy(conn, policy_id)
    if current is None:
        raise NotFound(f"escalation policy {policy_id} does not exist", ["path", "policy_id"])
    if current["category"] is None:
        raise Conflict("every severity keeps a default policy; edit it with PUT instead", ["path", "policy_id"])
    q.delete_policy(conn, policy_id)
    return Response(status_code=204)
