"""Grouping: a flood at one site becomes one notification per recipient and interval, not hundreds.

The first alert of a group goes out at once (a trapped passenger must not wait for company); alerts
of the same group within ``interval_s`` of that join one follow-up sent when the interval ends, much
as Alertmanager's group_interval does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class PlacementKind(StrEnum):
    LEAD = "lead"  # a new notification, due now
    FOLLOW = "follow"  # a new notification collecting the group, due when the interval ends
    APPEND = "append"  # join the group's notification that is not yet due


@dataclass(frozen=True, slots=True)
class Placement:
    kind: PlacementKind
    due_at: datetime


def group_key(*, gateway_id: str | None, unit_id: int | None, equipment_id: int, status: str) -> str:
    """One site's alerts of one status share a key: the gateway (a site's box), else the unit, else the equipment."""
    if gateway_id:
        site = f"gw:{gateway_id}"
    elif unit_id is not None:
        site = f"unit:{unit_id}"
    else:
        site = f"eq:{equipment_id}"
    return f"{site}|{status}"


def place_notification(*, now: datetime, interval_s: float, pending_due_at: datetime | None,
                       last_created_at: datetime | None) -> Placement:
    """Where a new alert for one (recipient, group) goes.

    ``pending_due_at``: the due time of the group's notification not yet sent (nor tried), if any;
    ``last_created_at``: when the group's latest notification was created, if any.
    """
    if interval_s <= 0:
        return Placement(PlacementKind.LEAD, now)
    if pending_due_at is not None and pending_due_at > now:
        return Placement(PlacementKind.APPEND, pending_due_at)
    window = timedelta(seconds=interval_s)
    if last_created_at is not None and now - last_created_at < window:
        return Placement(PlacementKind.FOLLOW, last_created_at + window)
    return Placement(PlacementKind.LEAD, now)
