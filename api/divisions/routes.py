"""Divisions within the caller's jurisdiction, with live counts for the dashboard."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import IN_SCOPE, Conn, CurrentUser
from api.divisions.models import DivisionRead

router = APIRouter(prefix="/api/v1/divisions", tags=["divisions"])

# Counts are per banner; the client rolls them up the tree it is shown.
SELECT_DIVISIONS_WITH_COUNTS = f"""
SELECT d.code, d.name, d.name_en, d.parent_code, d.level,
       coalesce(eq.total, 0) AS equipment, coalesce(eq.online, 0) AS online,
       coalesce(eq.overdue, 0) AS inspections_overdue,
       coalesce(al.critical, 0) AS critical, coalesce(al.major, 0) AS major,
       coalesce(al.minor, 0) AS minor, coalesce(al.warning, 0) AS warning
FROM divisions d
LEFT JOIN (
    SELECT e.banner_code, count(*) AS total, count(*) FILTER (WHERE gs.state = 'online') AS online,
           count(*) FILTER (WHERE e.next_inspection_on < current_date AND e.status = 'in_use') AS overdue
    FROM equipment e LEFT JOIN gateway_status gs ON gs.gateway_id = e.gateway_id
    GROUP BY e.banner_code
) eq ON eq.banner_code = d.code
LEFT JOIN (
    SELECT division_code, count(*) FILTER (WHERE severity = 'critical') AS critical,
           count(*) FILTER (WHERE severity = 'major') AS major, count(*) FILTER (WHERE severity = 'minor') AS minor,
           count(*) FILTER (WHERE severity = 'warning') AS warning
    FROM alerts WHERE closed_at IS NULL GROUP BY division_code
) al ON al.division_code = d.code
WHERE {IN_SCOPE}
ORDER BY d.code
"""


@router.get("", response_model=list[DivisionRead])
def list_(conn: Conn, user: CurrentUser) -> list[DivisionRead]:
    return [DivisionRead(**r) for r in conn.execute(SELECT_DIVISIONS_WITH_COUNTS, {"scope": user.division_code})]
