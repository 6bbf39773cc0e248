"""Alert endpoints: list and read within the jurisdiction; the workflow actions with an audit trail.

Every state change (acknowledge, reset, shelve, unshelve) writes one ``alert_transitions`` row with
the person and their reason, in the transaction that changes the alert; assignments and comments are
kept in ``alert_notes``. The rule catalogue and per-equipment overrides live under ``/rules``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Response

from alerts.engine.defaults import DEFAULT_RULES
from alerts.engine.lifecycle import Action, AlarmState, AlarmStatus, InvalidTransition, transition
from alerts.engine.rules import Limit, Rule
from api.alerts.cursors import decode_key, encode_key
from api.alerts.models import (
    AlertActionBody,
    AlertDetail,
    AlertPage,
    AlertRead,
    AssignBody,
    CommentBody,
    DivisionWorkload,
    NoteRead,
    OverrideBody,
    OverrideRead,
    RuleRead,
    SeverityTotals,
    ShelveBody,
    SupervisionItem,
    SupervisionPage,
    TransitionRead,
)
from api.alerts.queries import (
    DELETE_OVERRIDE,
    INSERT_EQUIPMENT_AUDIT,
    INSERT_NOTE,
    INSERT_TRANSITION,
    NOTIFY_ALERT,
    SELECT_ALERT_FOR_UPDATE,
    SELECT_ASSIGNABLE,
    UPDATE_ALERT_STATE,
    UPDATE_ASSIGNEE,
    UPSERT_OVERRIDE,
    alert_totals,
    get_alert,
    get_equipment_in_scope,
    list_alerts,
    list_overrides,
    list_supervision,
    notes_of,
    supervision_by_division,
    transitions_of,
)
from api.deps import HANDLE_ALERTS, Conn, CurrentUser, require
from api.errors import Conflict, NotFound, Unprocessable, responses

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
AlertId = Annotated[int, Path(ge=1, le=2**62)]
EquipmentCode = Annotated[str, Path(min_length=4, max_length=32, pattern=r"^[A-Za-z0-9]+$")]
RuleKey = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[a-z0-9_.]+$")]
# Who may change a rule for one equipment: inspectors of its jurisdiction and administrators.
TUNE_RULES = ("region_inspector", "league_inspector", "banner_inspector", "administrator")

RULES_BY_CATEGORY: dict[str, dict[str, Rule]] = {}
for _rule in DEFAULT_RULES:
    RULES_BY_CATEGORY.setdefault(str(_rule.category), {})[_rule.key] = _rule


# ------------------------------------------------------------------ rules (declared before /{alert_id})

def _limit_text(limit: Limit | None) -> str | None:
    if limit is None:
        return None
    if limit.absolute is not None:
        return f"{limit.absolute:g}"
    text = f"{limit.factor:g} × {limit.param}" + (f" + {limit.offset:g}" if limit.offset else "")
    return text + (f" (else {limit.fallback:g})" if limit.fallback is not None else "")


def _rule_read(rule: Rule) -> RuleRead:
    return RuleRead(key=rule.key, category=str(rule.category), kind=str(rule.kind), metric=rule.metric,
                    direction=str(rule.direction), severity=str(rule.severity), limit=_limit_text(rule.limit) or "",
                    low=_limit_text(rule.low), deadband=rule.deadband, on_delay_s=rule.on_delay_s,
                    off_delay_s=rule.off_delay_s, window_s=rule.window_s, covered_by=list(rule.covered_by),
                    message=rule.message)


@router.get("/rules", response_model=list[RuleRead])
def rules(user: CurrentUser, category: Annotated[str | None, Query(pattern=r"^[123]000$")] = None) -> list[RuleRead]:
    """The default rules: limits against rated parameters, deadbands, delays (sources: alerts/engine/defaults.py)."""
    return [_rule_read(r) for r in DEFAULT_RULES if category is None or r.category == category]


@router.get("/rules/overrides", response_model=list[OverrideRead])
def overrides(conn: Conn, user: CurrentUser,
              equipment: Annotated[str | None, Query(max_length=32)] = None) -> list[OverrideRead]:
    """Per-equipment rule overrides within your jurisdiction."""
    return [OverrideRead(**r) for r in list_overrides(conn, scope=user.division_code, code=equipment)]


def _equipment_rule(conn: Conn, user: CurrentUser, code: str, rule_key: str) -> dict[str, Any]:
    eq = get_equipment_in_scope(conn, scope=user.division_code, code=code)
    if eq is None:
        raise NotFound(f"equipment {code} is not in your jurisdiction", ["path", "equipment_code"])
    if rule_key not in RULES_BY_CATEGORY.get(eq["category"], {}):
        known = ", ".join(sorted(RULES_BY_CATEGORY.get(eq["category"], {})))
        raise Unprocessable(f"rule {rule_key} does not apply to category {eq['category']}; its rules are: {known}",
                            ["path", "rule_key"])
    return eq


@router.put("/rules/overrides/{equipment_code}/{rule_key}", response_model=OverrideRead,
            dependencies=[require(*TUNE_RULES)])
def put_override(equipment_code: EquipmentCode, rule_key: RuleKey, body: OverrideBody, conn: Conn,
                 user: CurrentUser) -> OverrideRead:
    """Change one rule for one equipment; the alert workers pick it up at their next housekeeping."""
    with conn.transaction():
        eq = _equipment_rule(conn, user, equipment_code, rule_key)
        rule = RULES_BY_CATEGORY[eq["category"]][rule_key]
        if body.low_value is not None and rule.low is None:
            raise Unprocessable(f"rule {rule_key} has no low limit; set limit_value", ["body", "low_value"])
        values = body.model_dump()
        conn.execute(UPSERT_OVERRIDE, {**values, "equipment_id": eq["id"], "rule_key": rule_key,
                                       "updated_by": user.username})
        conn.execute(INSERT_EQUIPMENT_AUDIT, (eq["id"], user.username, "rule_override",
                                              orjson.dumps({"rule_key": rule_key, **values}).decode()))
    rows = list_overrides(conn, scope=user.division_code, code=equipment_code)
    return OverrideRead(**next(r for r in rows if r["rule_key"] == rule_key))


@router.delete("/rules/overrides/{equipment_code}/{rule_key}", status_code=204,
               dependencies=[require(*TUNE_RULES)])
def delete_override(equipment_code: EquipmentCode, rule_key: RuleKey, conn: Conn, user: CurrentUser) -> Response:
    """Go back to the default rule for this equipment."""
    with conn.transaction():
        eq = _equipment_rule(conn, user, equipment_code, rule_key)
        deleted = conn.execute(DELETE_OVERRIDE, (eq["id"], rule_key)).rowcount
        if not deleted:
            raise NotFound(f"equipment {equipment_code} has no override of {rule_key}", ["path", "rule_key"])
        conn.execute(INSERT_EQUIPMENT_AUDIT, (eq["id"], user.username, "rule_override_removed",
                                              orjson.dumps({"rule_key": rule_key}).decode()))
    return Response(status_code=204)


# ------------------------------------------------------------------ alerts

SORT_KEYS = {"priority": 4, "time": 2}  # values in each order's cursor


@router.get("", response_model=AlertPage)
def list_(conn: Conn, user: CurrentUser,
          division: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
          severity: Annotated[str | None, Query(pattern=r"^(critical|major|minor|warning)$")] = None,
          state: Annotated[str | None, Query(pattern=r"^[a-z_]{1,20}$")] = None,
          open: Annotated[bool | None, Query(description="true: not yet closed")] = None,
          equipment: Annotated[str | None, Query(max_length=32)] = None,
          kind: Annotated[str | None, Query(pattern=r"^[a-z_]{1,20}$", description="rule kind")] = None,
          rule: Annotated[str | None, Query(max_length=100)] = None,
          assignee: Annotated[str | None, Query(max_length=100)] = None,
          world: Annotated[Literal["hazard", "supervision"] | None, Query(
              description="hazard: the feed's alerts; supervision: overdue inspections, registrations")] = None,
          sort: Annotated[Literal["priority", "time"], Query(
              description="priority: most severe, then unacknowledged, then newest; time: newest first")] = "priority",
          cursor: Annotated[str | None, Query(max_length=200)] = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> AlertPage:
    """Alerts in your jurisdiction, sorted and paged on the server, with the totals of the whole list."""
    filters = {"scope": user.division_code, "division": division, "state": state, "open": open,
               "equipment": equipment, "kind": kind, "rule": rule, "assignee": assignee, "world": world}
    after = decode_key(cursor, sort, SORT_KEYS[sort]) or [None] * SORT_KEYS[sort]
    keys = ("after_rank", "after_acked", "after_opened", "after_id") if sort == "priority" else (
        "after_opened", "after_id")
    rows = list_alerts(conn, by_priority=sort == "priority", **filters, severity=severity, limit=limit,
                       **dict(zip(keys, after, strict=True)))
    next_cursor = None
    if len(rows) == limit:
        last = rows[-1]
        key = [last["opened_at"].isoformat(), last["id"]]
        next_cursor = encode_key(sort, [last["severity_rank"], last["acknowledged"], *key] if sort == "priority"
                                 else key)
    counts = alert_totals(conn, **filters)
    counted = [c for c in counts if severity is None or c["severity"] == severity]
    return AlertPage(items=[AlertRead(**r) for r in rows], next_cursor=next_cursor,
                     total=sum(c["n"] for c in counted), unacknowledged=sum(c["unacknowledged"] for c in counted),
                     totals=SeverityTotals(**{c["severity"]: c["n"] for c in counts}))


@router.get("/supervision", response_model=SupervisionPage)
def supervision(conn: Conn, user: CurrentUser,
                division: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
                rule: Annotated[str | None, Query(max_length=100)] = None,
                cursor: Annotated[str | None, Query(max_length=200)] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> SupervisionPage:
    """The supervision worklist: open overdue inspections and registrations, with due dates, longest overdue
    first, and how many each banner of your jurisdiction holds. These never reach the emergency console."""
    filters = {"scope": user.division_code, "division": division, "rule": rule}
    after = decode_key(cursor, "due", 2) or [None, None]
    rows = list_supervision(conn, **filters, after_due=after[0], after_id=after[1], limit=limit)
    next_cursor = None
    if len(rows) == limit:
        last = rows[-1]
        due = last["due_on"].isoformat() if last["due_on"] is not None else "infinity"
        next_cursor = encode_key("due", [due, last["id"]])
    divisions = supervision_by_division(conn, **filters)
    return SupervisionPage(items=[SupervisionItem(**r) for r in rows], next_cursor=next_cursor,
                           total=sum(d["open"] for d in divisions),
                           by_division=[DivisionWorkload(**d) for d in divisions])


@router.get("/{alert_id}", response_model=AlertDetail)
def get(alert_id: AlertId, conn: Conn, user: CurrentUser) -> AlertDetail:
    """One alert with its full history: every state change and every comment or assignment."""
    row = get_alert(conn, scope=user.division_code, alert_id=alert_id)
    if row is None:
        raise NotFound(f"alert {alert_id} is not in your jurisdiction", ["path", "alert_id"])
    return AlertDetail(**row, transitions=[TransitionRead(**t) for t in transitions_of(conn, alert_id)],
                       comments=[NoteRead(**n) for n in notes_of(conn, alert_id)])


def _act(conn: Conn, user: CurrentUser, alert_id: int, action: Action, reason: str, *,
         shelve_minutes: int | None = None) -> AlertDetail:
    with conn.transaction():
        row = conn.execute(SELECT_ALERT_FOR_UPDATE, {"scope": user.division_code, "id": alert_id}).fetchone()
        if row is None:
            raise NotFound(f"alert {alert_id} is not in your jurisdiction", ["path", "alert_id"])
        status = AlarmStatus(AlarmState(row["state"]), row["active"], row["latched"], row["severity"] == "critical")
        try:
            after = transition(status, action)
        except InvalidTransition as exc:
            raise Conflict(str(exc), ["path", "alert_id"]) from None
        until = datetime.now(UTC) + timedelta(minutes=shelve_minutes) if shelve_minutes else None
        conn.execute(UPDATE_ALERT_STATE, {"id": alert_id, "state": str(after.state), "active": after.active,
                                          "latched": after.latched, "shelved_until": until,
                                          "shelved_by": user.username})
        why = reason or str(action)
        if until is not None:
            why = f"{why} (shelved until {until.isoformat(timespec='seconds')})"
        conn.execute(INSERT_TRANSITION, (alert_id, row["state"], str(after.state), user.username, why))
        conn.execute(NOTIFY_ALERT, (str(alert_id),))
    return get(alert_id, conn, user)


@router.post("/{alert_id}/acknowledge", responses=responses(409),
             response_model=AlertDetail, dependencies=[require(*HANDLE_ALERTS)])
def acknowledge(alert_id: AlertId, body: AlertActionBody, conn: Conn, user: CurrentUser) -> AlertDetail:
    return _act(conn, user, alert_id, Action.ACKNOWLEDGE, body.reason)


@router.post("/{alert_id}/reset", responses=responses(409),
             response_model=AlertDetail, dependencies=[require(*HANDLE_ALERTS)])
def reset(alert_id: AlertId, body: AlertActionBody, conn: Conn, user: CurrentUser) -> AlertDetail:
    """Reset a latched alert (a trapped passenger) once the device reports the condition cleared."""
    return _act(conn, user, alert_id, Action.RESET, body.reason)


@router.post("/{alert_id}/shelve", responses=responses(409),
             response_model=AlertDetail, dependencies=[require(*HANDLE_ALERTS)])
def shelve(alert_id: AlertId, body: ShelveBody, conn: Conn, user: CurrentUser) -> AlertDetail:
    """Take a nuisance alert out of view for ``minutes``; critical and latched alerts cannot be shelved."""
    return _act(conn, user, alert_id, Action.SHELVE, body.reason, shelve_minutes=body.minutes)


@router.post("/{alert_id}/unshelve", responses=responses(409),
             response_model=AlertDetail, dependencies=[require(*HANDLE_ALERTS)])
def unshelve(alert_id: AlertId, body: AlertActionBody, conn: Conn, user: CurrentUser) -> AlertDetail:
    return _act(conn, user, alert_id, Action.UNSHELVE, body.reason)


@router.post("/{alert_id}/assign", response_model=AlertDetail, dependencies=[require(*HANDLE_ALERTS)])
def assign(alert_id: AlertId, body: AssignBody, conn: Conn, user: CurrentUser) -> AlertDetail:
    """Name the person handling the alert (someone whose jurisdiction covers it)."""
    with conn.transaction():
        row = get_alert(conn, scope=user.division_code, alert_id=alert_id)
        if row is None:
            raise NotFound(f"alert {alert_id} is not in your jurisdiction", ["path", "alert_id"])
        if conn.execute(SELECT_ASSIGNABLE, {"username": body.assignee, "division": row["division_code"]}).fetchone() \
                is None:
            raise Unprocessable(f"{body.assignee} is not a user whose jurisdiction covers division "
                                f"{row['division_code']}; assign someone who can see this alert", ["body", "assignee"])
        conn.execute(UPDATE_ASSIGNEE, {"assignee": body.assignee, "id": alert_id})
        conn.execute(INSERT_NOTE, (alert_id, user.username, "assign", f"assigned to {body.assignee}"))
        conn.execute(NOTIFY_ALERT, (str(alert_id),))
    return get(alert_id, conn, user)


@router.post("/{alert_id}/comments", response_model=AlertDetail, dependencies=[require(*HANDLE_ALERTS)])
def comment(alert_id: AlertId, body: CommentBody, conn: Conn, user: CurrentUser) -> AlertDetail:
    with conn.transaction():
        if get_alert(conn, scope=user.division_code, alert_id=alert_id) is None:
            raise NotFound(f"alert {alert_id} is not in your jurisdiction", ["path", "alert_id"])
        conn.execute(INSERT_NOTE, (alert_id, user.username, "comment", body.text))
    return get(alert_id, conn, user)
