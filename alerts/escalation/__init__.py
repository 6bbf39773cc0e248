"""Escalation decisions, pure: which levels to notify, when the next step is due, how to group and retry.

Everything here takes plain data and an explicit ``now`` and returns plain data; the notifier
(alerts/notifier_worker.py, alerts/outbox.py) does the SQL and the sending.
"""

from alerts.escalation.decisions import Decision, NextTimer, Timer, TimerKind, next_escalation
from alerts.escalation.delivery import retry_delay
from alerts.escalation.grouping import Placement, PlacementKind, group_key, place_notification
from alerts.escalation.policy import AlertView, EscalationPolicy, Level, PolicyError, World, select_policy
from alerts.escalation.responses import time_at_levels
from alerts.escalation.routing import ContactView, Place, divisions_to_notify, wants, wants_system_alert

__all__ = [
    "AlertView",
    "ContactView",
    "Decision",
    "EscalationPolicy",
    "Level",
    "NextTimer",
    "Place",
    "Placement",
    "PlacementKind",
    "PolicyError",
    "Timer",
    "TimerKind",
    "World",
    "divisions_to_notify",
    "group_key",
    "next_escalation",
    "place_notification",
    "retry_delay",
    "select_policy",
    "time_at_levels",
    "wants",
    "wants_system_alert",
]
