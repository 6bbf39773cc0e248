"""Non-telemetry alerts: overdue periodic inspection and expired use registration (pure, explicit ``now``).

The worker's periodic job loads the registry facts and the open alerts, calls `registry_effects`
with its own ``now``, and carries out the effects; the same facts and ``now`` always give the same
effects. Dates are calendar dates in China Standard Time (UTC+8), as certificates carry them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from alerts.engine.rules import Rule, RuleKind
from alerts.engine.step import ClearAlert, Effect, RaiseAlert

CST = timezone(timedelta(hours=8))
OVERDUE_KEY = "inspection.overdue"
REGISTRATION_KEY = "registration.expired"


@dataclass(frozen=True, slots=True)
class RegistryFacts:
    """What the registry says of one equipment, as far as these alerts care."""

    equipment_id: int
    status: str
    next_inspection_on: date | None
    registration_no: str | None
    commissioned_on: date | None
    registration_expires_on: date | None = None


def local_date(now: datetime) -> date:
    """The calendar date in Inner Mongolia (UTC+8) at ``now`` (which must carry a time zone)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return now.astimezone(CST).date()


def _overdue(facts: RegistryFacts, today: date) -> str | None:
    if facts.next_inspection_on is None or facts.next_inspection_on >= today:
        return None
    days = (today - facts.next_inspection_on).days
    return f"periodic inspection overdue by {days} d (due {facts.next_inspection_on.isoformat()})"


def _registration(facts: RegistryFacts, today: date, grace_days: float) -> str | None:
    if facts.registration_expires_on is not None and facts.registration_expires_on < today:
        return f"use registration expired on {facts.registration_expires_on.isoformat()}"
    if not facts.registration_no and facts.commissioned_on is not None:
        deadline = facts.commissioned_on + timedelta(days=grace_days)
        if deadline < today:
            return (f"not registered within {grace_days:g} days of entering service "
                    f"({facts.commissioned_on.isoformat()}; TSG 08)")
    return None


def registry_effects(facts: RegistryFacts, rules: Sequence[Rule], open_keys: Collection[str],
                     now: datetime) -> list[Effect]:
    """Raise what is newly due, clear what is resolved; ``open_keys`` are the rule keys of its open alerts.

    Equipment not in use (suspended, scrapped, cancelled) is not inspected: nothing is raised for it,
    and what was raised clears.
    """
    today = local_date(now)
    ts_ms = int(now.timestamp() * 1000)
    effects: list[Effect] = []
    for rule in rules:
        if rule.kind is not RuleKind.INSPECTION:
            continue
        in_use = facts.status == "in_use"
        if rule.key == OVERDUE_KEY:
            finding = _overdue(facts, today) if in_use else None
        elif rule.key == REGISTRATION_KEY:
            grace = rule.limit.absolute if rule.limit.absolute is not None else 30.0
            finding = _registration(facts, today, grace) if in_use else None
        else:
            continue
        if finding is not None and rule.key not in open_keys:
            effects.append(RaiseAlert(facts.equipment_id, rule.key, rule.severity, None, None, None, ts_ms,
                                      f"{finding}: {rule.message}", kind=RuleKind.INSPECTION))
        elif finding is None and rule.key in open_keys:
            effects.append(ClearAlert(facts.equipment_id, rule.key, None, None, ts_ms))
    return effects
