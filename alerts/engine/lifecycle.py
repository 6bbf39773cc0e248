"""The ISA-18.2 alarm lifecycle as a pure transition function.

    normal ──condition──► active_unack ──ack──► active_ack
                              │                     │
                          condition gone        condition gone
                              ▼                     ▼
                        returned_unack ──ack──►  normal (closed)

Latched alerts (a trapped passenger) stay active when the condition goes until a person resets
them. Shelving, suppression and out-of-service are deepened with the alert workflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AlarmState(StrEnum):
    """ISA-18.2 state names, as stored."""

    ACTIVE_UNACK = "active_unack"
    ACTIVE_ACK = "active_ack"
    RETURNED_UNACK = "returned_unack"
    NORMAL = "normal"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"
    OUT_OF_SERVICE = "out_of_service"


class Action(StrEnum):
    CONDITION_ON = "condition_on"
    CONDITION_OFF = "condition_off"
    ACKNOWLEDGE = "acknowledge"
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class AlarmStatus:
    """What the lifecycle needs to know of an alert."""

    state: AlarmState
    active: bool
    latched: bool = False


class InvalidTransition(ValueError):
    """The action does not apply in the alert's current state."""


def transition(status: AlarmStatus, action: Action) -> AlarmStatus:
    """The status after ``action``; raise `InvalidTransition` when it makes no sense."""
    s = status.state
    if action is Action.CONDITION_ON:
        if s in (AlarmState.NORMAL, AlarmState.RETURNED_UNACK):
            return AlarmStatus(AlarmState.ACTIVE_UNACK, True, status.latched)
        return AlarmStatus(s, True, status.latched)
    if action is Action.CONDITION_OFF:
        if status.latched:
            return AlarmStatus(s, False, True)  # stays where it is until a person resets it
        if s is AlarmState.ACTIVE_UNACK:
            return AlarmStatus(AlarmState.RETURNED_UNACK, False)
        if s is AlarmState.ACTIVE_ACK:
            return AlarmStatus(AlarmState.NORMAL, False)
        return AlarmStatus(s, False, status.latched)
    if action is Action.ACKNOWLEDGE:
        if s is AlarmState.ACTIVE_UNACK:
            return AlarmStatus(AlarmState.ACTIVE_ACK, status.active, status.latched)
        if s is AlarmState.RETURNED_UNACK:
            return AlarmStatus(AlarmState.NORMAL, False)
        raise InvalidTransition(f"an alert in state {s} cannot be acknowledged")
    if action is Action.RESET:
        if not status.latched:
            raise InvalidTransition("only latched alerts are reset; acknowledge this one instead")
        if status.active:
            raise InvalidTransition("the condition is still present; reset it once the device reports it cleared")
        return AlarmStatus(AlarmState.NORMAL, False, False)
    raise InvalidTransition(f"unknown action {action}")


def is_closed(state: AlarmState) -> bool:
    """A closed alert needs nothing more from anyone; a new occurrence opens a new alert."""
    return state is AlarmState.NORMAL
