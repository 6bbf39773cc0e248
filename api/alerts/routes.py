"""Alert endpoints: list and read within the jurisdiction; the workflow actions with an audit trail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from alerts.engine.lifecycle import Action, AlarmState, AlarmStatus, InvalidTransition, transition
from api.alerts.models import AlertActionBody, AlertDetail, AlertPage, AlertRead, TransitionRead
from api.alerts.queries import (
    INSERT_TRANSITION,
    SELECT_ALERT_FOR_UPDATE,
    UPDATE_ALERT_STATE,
    get_alert,
    list_alerts,
    transitions_of,
)
from api.deps import HANDLE_ALERTS, Conn, CurrentUser, require
from api.errors import Conflict, NotFound
from api.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
AlertId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("", response_model=AlertPage)
def list_(conn: Conn, user: CurrentUser,
          division: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
          severity: Annotated[str | None, Query(pattern=r"^(critical|major|minor|warning)$")] = None,
          state: Annotated[str | None, Query(pattern=r"^[a-z_]{1,20}$")] = None,
          open: Annotated[bool | None, Query(description="true: not yet closed")] = None,
          equipment: Annotated[str | None, Query(max_length=32)] = None,
          cursor: Annotated[str | None, Query(max_length=64)] = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> AlertPage:
    rows = list_alerts(conn, scope=user.division_code, division=division, severity=severity, state=state, open=open,
                       equipment=equipment, before=decode_cursor(cursor), limit=limit)
    items = [AlertRead(**r) for r in rows]
    return AlertPage(items=items, next_cursor=encode_cursor(items[-1].id) if len(items) == limit else None)


@router.get("/{alert_id}", response_model=AlertDetail)
def get(alert_id: AlertId, conn: Conn, user: CurrentUser) -> AlertDetail:
    row = get_alert(conn, scope=user.division_code, alert_id=alert_id)
    if row is None:
        raise NotFound(f"alert {alert_id} is not in your jurisdiction", ["path", "alert_id"])
    return AlertDetail(**row, transitions=[TransitionRead(**t) for t in transitions_of(conn, alert_id)])


def _act(conn: Conn, user: CurrentUser, alert_id: int, action: Action, reason: str) -> AlertDetail:
    with conn.transaction():
        row = conn.execute(SELECT_ALERT_FOR_UPDATE, {"scope": user.division_code, "id": alert_id}).fetchone()
        if row is None:
            raise NotFound(f"alert {alert_id} is not in your jurisdiction", ["path", "alert_id"])
        try:
            after = transition(AlarmStatus(AlarmState(row["state"]), row["active"], row["latched"]), action)
        except InvalidTransition as exc:
            raise Conflict(str(exc), ["path", "alert_id"]) from None
        conn.execute(UPDATE_ALERT_STATE, {"id": alert_id, "state": str(after.state), "active": after.active,
                                          "latched": after.latched})
        conn.execute(INSERT_TRANSITION, (alert_id, row["state"], str(after.state), user.username,
                                         reason or str(action)))
    return get(alert_id, conn, user)


@router.post("/{alert_id}/acknowledge", response_model=AlertDetail, dependencies=[require(*HANDLE_ALERTS)])
def acknowledge(alert_id: AlertId, body: AlertActionBody, conn: Conn, user: CurrentUser) -> AlertDetail:
    return _act(conn, user, alert_id, Action.ACKNOWLEDGE, body.reason)


@router.post("/{alert_id}/reset", response_model=AlertDetail, dependencies=[require(*HANDLE_ALERTS)])
def reset(alert_id: AlertId, body: AlertActionBody, conn: Conn, user: CurrentUser) -> AlertDetail:
    return _act(conn, user, alert_id, Action.RESET, body.reason)
