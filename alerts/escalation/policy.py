"""Escalation policies (as stored in ``escalation_policies``) and the alert facts decisions need."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    """A jurisdiction level, lowest first: 旗县 banner → 盟市 league → 自治区 region."""

    BANNER = "banner"
    LEAGUE = "league"
    REGION = "region"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def above(self) -> Level | None:
        """The next level up, or None at the region."""
        return _ORDER[self.rank + 1] if self.rank + 1 < len(_ORDER) else None


class World(StrEnum):
    """Which world an alert belongs to (``alerts.world``, decided by its rule kind in migration 045).

    危险 hazards (telemetry, events, anomalies, offline) reach the feed and the emergency console and
    escalate in minutes; 监管事项 supervision matters (inspection overdue, registration) go to a worklist
    and escalate on their own slow policies (``supervision_escalation_policies``).
    """

    HAZARD = "hazard"
    SUPERVISION = "supervision"


_ORDER = (Level.BANNER, Level.LEAGUE, Level.REGION)
_RANK = {level: i for i, level in enumerate(_ORDER)}
SEVERITIES = ("critical", "major", "minor", "warning")  # most severe first


class PolicyError(ValueError):
    """A policy that cannot be applied; the message names the field and what to change."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(msg)
        self.field = field


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """How alerts of one severity (and optionally one equipment category) escalate."""

    severity: str
    category: str | None
    open_levels: frozenset[Level]
    max_level: Level
    banner_ack_s: int
    league_ack_s: int
    renotify_s: int | None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise PolicyError("severity", f"severity {self.severity!r} is not one of {SEVERITIES}")
        if not self.open_levels:
            raise PolicyError("open_levels", "notify at least one level when the alert opens")
        if max(lv.rank for lv in self.open_levels) > self.max_level.rank:
            raise PolicyError("max_level", f"max_level {self.max_level} is below a level notified at opening; "
                                           "raise max_level or drop that opening level")
        if self.banner_ack_s <= 0 or self.league_ack_s <= 0:
            raise PolicyError("banner_ack_s", "acknowledgement times must be positive seconds")
        if self.renotify_s is not None and self.renotify_s <= 0:
            raise PolicyError("renotify_s", "renotify_s must be positive seconds, or null for never")

    @property
    def top_open_level(self) -> Level:
        return max(self.open_levels, key=lambda lv: lv.rank)

    def ack_window_s(self, level: Level) -> int:
        """Seconds ``level`` has to acknowledge before the alert climbs above it."""
        return self.banner_ack_s if level is Level.BANNER else self.league_ack_s


def select_policy(policies: Iterable[EscalationPolicy], severity: str, category: str) -> EscalationPolicy:
    """The category's own policy for ``severity`` if there is one, else the severity's default."""
    fallback = None
    for p in policies:
        if p.severity != severity:
            continue
        if p.category == category:
            return p
        if p.category is None:
            fallback = p
    if fallback is None:
        raise PolicyError("severity", f"no escalation policy for severity {severity!r}; "
                                      "create one (POST /api/v1/escalation-policies)")
    return fallback


@dataclass(frozen=True, slots=True)
class AlertView:
    """What escalation needs to know of an alert, read in the transaction that fires its timer."""

    id: int
    severity: str
    category: str
    level: Level
    acknowledged: bool  # a person acknowledged it (or it was shelved, suppressed, taken out of service)
    closed: bool
    notified: frozenset[Level] = frozenset()  # levels that have been notified of it so far
