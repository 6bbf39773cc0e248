"""Response-time figures of one alert (pure): time spent at each level."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from alerts.escalation.policy import Level


def time_at_levels(*, opened_at: datetime, changes: Iterable[tuple[datetime, Level]], until: datetime,
                   ) -> dict[Level, float]:
    """Seconds the alert spent at each level, from opening (at the banner) until ``until``.

    ``changes`` are (at, new level) from ``alert_escalations``; ``until`` is when escalation stopped
    (acknowledged, resolved, or now).
    """
    spent = {level: 0.0 for level in Level}
    level, since = Level.BANNER, opened_at
    for at, new_level in sorted(changes, key=lambda c: c[0]):
        at = min(max(at, since), until)
        spent[level] += (at - since).total_seconds()
        level, since = new_level, at
    spent[level] += max(0.0, (until - since).total_seconds())
    return spent
