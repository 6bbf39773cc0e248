"""Flood detection per division (pure, event time): more than 10 new alerts in 10 minutes (EEMUA 191).

Chattering (≥ 3 transitions a minute per rule) is decided per equipment in `alerts.engine.step`;
the KPIs over both are SQL in ``api/kpis``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

FLOOD_WINDOW_MS = 10 * 60_000
FLOOD_THRESHOLD = 10  # a flood is MORE than this many new alerts in the window (DOMAIN.md)
_KEEP = 1000  # times kept per division: bounded however large the flood


class FloodChange(StrEnum):
    STARTED = "started"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class FloodState:
    """New-alert event times of one division inside the window, and whether it is in flood."""

    times: tuple[int, ...] = ()
    flooding: bool = False
    peak: int = 0


def flood_step(state: FloodState, new_alert_times: Iterable[int], now_ms: int,
               ) -> tuple[FloodState, FloodChange | None]:
    """Add the event times of new alerts and judge the window ending at ``now_ms``.

    The flood ends once the window holds no more than the threshold again.
    """
    times = sorted((*state.times, *new_alert_times))
    times = [t for t in times if now_ms - t < FLOOD_WINDOW_MS and t <= now_ms][-_KEEP:]
    count = len(times)
    if not state.flooding and count > FLOOD_THRESHOLD:
        return FloodState(tuple(times), True, count), FloodChange.STARTED
    if state.flooding and count <= FLOOD_THRESHOLD:
        return FloodState(tuple(times), False, state.peak), FloodChange.ENDED
    return FloodState(tuple(times), state.flooding, max(state.peak, count) if state.flooding else 0), None
