"""Response times: one alert's record, and per-division statistics (what a 96333 platform reports).

e.g. the share of trapped-passenger alerts acknowledged within 5 minutes, per league::

    GET /api/v1/responses/stats?rule_key=event.passenger_trapped&ack_within_s=300&group_by=league
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from alerts.escalation import Level, time_at_levels
from api.deps import Conn, CurrentUser
from api.errors import NotFound, Unprocessable
from api.responses import queries as q
from api.responses.models import DivisionResponseStats, EscalationRead, ResponseRecord, ResponseStats
from safewatch.registry.records import IsoDateTime

router = APIRouter(prefix="/api/v1/responses", tags=["escalation"])


def _seconds(later: datetime | None, earlier: datetime) -> float | None:
    return None if later is None else (later - earlier).total_seconds()


@router.get("/alerts/{alert_id}", response_model=ResponseRecord)
def record(alert_id: Annotated[int, Path(ge=1, le=2**62)], conn: Conn, user: CurrentUser) -> ResponseRecord:
    row = q.get_record(conn, scope=user.division_code, alert_id=alert_id)
    if row is None:
        raise NotFound(f"alert {alert_id} is not in your jurisdiction", ["path", "alert_id"])
    escalations = q.escalations_of(conn, alert_id)
    until = row["acknowledged_at"] or row["resolved_at"] or row["now"]
    spent = time_at_levels(opened_at=row["opened_at"], changes=[(e["at"], Level(e["to_level"])) for e in escalations],
                           until=until)
    return ResponseRecord(
        **{k: v for k, v in row.items() if k != "now"},
        seconds_to_first_notification=_seconds(row["first_notified_at"], row["opened_at"]),
        seconds_to_acknowledge=_seconds(row["acknowledged_at"], row["opened_at"]),
        seconds_to_resolve=_seconds(row["resolved_at"], row["opened_at"]),
        seconds_at_level={str(level): round(s, 3) for level, s in spent.items()},
        escalations=[EscalationRead(**e) for e in escalations],
    )


@router.get("/stats", response_model=ResponseStats)
def stats(conn: Conn, user: CurrentUser,
          division: Annotated[str | None, Query(pattern=r"^\d{6}$", description="limit to this division")] = None,
          group_by: Annotated[Literal["banner", "league"], Query()] = "banner",
          severity: Annotated[str | None, Query(pattern=r"^(critical|major|minor|warning)$")] = None,
          category: Annotated[str | None, Query(pattern=r"^[0-9A-Z]{4}$")] = None,
          rule_key: Annotated[str | None, Query(max_length=100, description="e.g. event.passenger_trapped")] = None,
          ack_within_s: Annotated[int, Query(ge=1, le=7 * 24 * 3600)] = 300,
          since: IsoDateTime | None = None, until: IsoDateTime | None = None) -> ResponseStats:
    if since is not None and until is not None and since >= until:
        raise Unprocessable("since must be before until", ["query", "since"])
    rows = q.stats(conn, scope=user.division_code, division=division, group_by=group_by, severity=severity,
                   category=category, rule_key=rule_key, within=ack_within_s, since=since, until=until)
    divisions = [DivisionResponseStats(**r, share_acknowledged_within=(r["acknowledged_within"] / r["alerts"]
                                                                       if r["alerts"] else None)) for r in rows]
    return ResponseStats(ack_within_s=ack_within_s, since=since, until=until, divisions=divisions)
