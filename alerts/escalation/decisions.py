"""What a due escalation timer means: the levels to notify, the new level, and the next timers.

    open ──► notify the policy's opening levels; schedule the climb above the top one and a re-notify
    climb ──► (still unacknowledged) level up, notify the new level; schedule the next climb
    renotify ──► (still unacknowledged) notify every level notified so far again; schedule the next
    resolve ──► tell every level that was notified that the alert is resolved

Times are counted from the timer's due time, not from when it happened to fire, so a notifier that
was down catches up on schedule instead of shifting every later step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from alerts.escalation.policy import AlertView, EscalationPolicy, Level


class TimerKind(StrEnum):
    OPEN = "open"
    CLIMB = "climb"
    RENOTIFY = "renotify"
    RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class Timer:
    """A due timer as stored (``escalation_timers``)."""

    kind: TimerKind
    due_at: datetime
    level: Level | None = None  # climb: the level to climb to


@dataclass(frozen=True, slots=True)
class NextTimer:
    """A timer to write."""

    kind: TimerKind
    due_at: datetime
    level: Level | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one timer: nothing here has happened yet; the shell carries it out."""

    notify: tuple[Level, ...]  # lowest first
    status: str  # 'firing' or 'resolved': what the notifications say
    new_level: Level | None  # set alerts.level (and write the audit row) when not None
    timers: tuple[NextTimer, ...]
    reason: str


def _sorted(levels: frozenset[Level] | set[Level]) -> tuple[Level, ...]:
    return tuple(sorted(levels, key=lambda lv: lv.rank))


def _follow_ups(policy: EscalationPolicy, level: Level, base: datetime, now: datetime) -> list[NextTimer]:
    timers = []
    above = level.above()
    if above is not None and above.rank <= policy.max_level.rank:
        timers.append(NextTimer(TimerKind.CLIMB, base + timedelta(seconds=policy.ack_window_s(level)), above))
    if policy.renotify_s is not None:
        timers.append(NextTimer(TimerKind.RENOTIFY, _next_after(base, policy.renotify_s, now)))
    return timers


def _next_after(base: datetime, every_s: int, now: datetime) -> datetime:
    """The first ``base + k·every_s`` (k ≥ 1) after ``now``: a long outage re-notifies once, not k times."""
    step = timedelta(seconds=every_s)
    due = base + step
    if due <= now:
        due += step * ((now - due) // step + 1)
    return due


def next_escalation(policy: EscalationPolicy, alert: AlertView, timer: Timer, now: datetime) -> Decision:
    """Decide what the due ``timer`` of ``alert`` does under ``policy`` at ``now``."""
    stopped = alert.acknowledged or alert.closed
    if timer.kind is TimerKind.OPEN:
        levels = policy.open_levels
        top = policy.top_open_level
        new_level = top if top.rank > alert.level.rank else None
        timers = () if stopped else tuple(_follow_ups(policy, max(top, alert.level, key=lambda lv: lv.rank),
                                                      timer.due_at, now))
        return Decision(_sorted(levels), "firing", new_level, timers,
                        f"opened: policy for {policy.severity} notifies {', '.join(_sorted(levels))}")
    if timer.kind is TimerKind.RESOLVE:
        return Decision(_sorted(alert.notified), "resolved", None, (), "resolved")
    if stopped:
        why = "acknowledged" if alert.acknowledged else "closed"
        return Decision((), "firing", None, (), f"{timer.kind} skipped: alert already {why}")
    if timer.kind is TimerKind.CLIMB:
        target = timer.level
        if target is None or target.rank > policy.max_level.rank:
            return Decision((), "firing", None, (), f"climb skipped: policy now stops at {policy.max_level}")
        if target.rank <= alert.level.rank:
            return Decision((), "firing", None, (), f"climb skipped: alert already at {alert.level}")
        window = policy.ack_window_s(alert.level)
        climbs = [t for t in _follow_ups(policy, target, timer.due_at, now) if t.kind is TimerKind.CLIMB]
        return Decision((target,), "firing", target, tuple(climbs),
                        f"not acknowledged within {window} s at {alert.level}: climbed to {target}")
    # RENOTIFY
    levels = alert.notified or frozenset({alert.level})
    nxt = () if policy.renotify_s is None else (
        NextTimer(TimerKind.RENOTIFY, _next_after(timer.due_at, policy.renotify_s, now)),)
    return Decision(_sorted(levels), "firing", None, nxt,
                    f"still unacknowledged: re-notifying {', '.join(_sorted(levels))}")
