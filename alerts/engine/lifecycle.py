"""The ISA-18.2 alarm lifecycle as a pure transition function.

    normal ──condition──► active_unack ──ack──► active_ack
                              │                     │
                          condition gone        condition gone
                              ▼                     ▼
                        returned_unack ──ack──►  normal (closed)

Latched alerts (a trapped passenger) stay active when the condition goes until a person resets
them. Three states take an alert out of the operators' view while the condition is still tracked:

- ``shelved``: by a person, for a while (``shelved_until``); critical and latched alerts cannot be
  shelved (a trapped passenger is never hidden).
- ``suppressed``: by design, when the equipment is out of service (停用) or the alert is a child
  covered by its cause (the high-high covers the high, a silent gateway covers silent equipment).
- ``out_of_service``: the equipment is scrapped or cancelled; what it still reports is kept, not shown.

A suppressed or out-of-service alert whose condition goes closes (nobody was shown it); a shelved
one stays shelved until its shelving ends. Leaving any of the three (unshelve, shelving expiry,
unsuppress, return to service) lands where the
condition says: ``active_unack`` when it is present (or latched), else ``normal``.
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


HIDDEN = frozenset({AlarmState.SHELVED, AlarmState.SUPPRESSED, AlarmState.OUT_OF_SERVICE})


class Action(StrEnum):
    CONDITION_ON = "condition_on"
    CONDITION_OFF = "condition_off"
    ACKNOWLEDGE = "acknowledge"
    RESET = "reset"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    SUPPRESS = "suppress"
    UNSUPPRESS = "unsuppress"
    REMOVE_FROM_SERVICE = "remove_from_service"
    RETURN_TO_SERVICE = "return_to_service"


@dataclass(frozen=True, slots=True)
class AlarmStatus:
    """What the lifecycle needs to know of an alert."""

    state: AlarmState
    active: bool
    latched: bool = False
    critical: bool = False


class InvalidTransition(ValueError):
    """The action does not apply in the alert's current state."""


def _back_in_view(status: AlarmStatus) -> AlarmStatus:
    if status.active or status.latched:
        return AlarmStatus(AlarmState.ACTIVE_UNACK, status.active, status.latched, status.critical)
    return AlarmStatus(AlarmState.NORMAL, False, False, status.critical)


def transition(status: AlarmStatus, action: Action) -> AlarmStatus:
    """The status after ``action``; raise `InvalidTransition` (saying what to do instead) when it makes no sense."""
    s, crit = status.state, status.critical
    if action is Action.CONDITION_ON:
        if s in (AlarmState.NORMAL, AlarmState.RETURNED_UNACK):
            return AlarmStatus(AlarmState.ACTIVE_UNACK, True, status.latched, crit)
        return AlarmStatus(s, True, status.latched, crit)
    if action is Action.CONDITION_OFF:
        if status.latched or s is AlarmState.SHELVED:
            # Latched: stays until a person resets it. Shelved: the person who shelved it sees it come
            # back (as normal) when the shelving ends.
            return AlarmStatus(s, False, status.latched, crit)
        if s in (AlarmState.SUPPRESSED, AlarmState.OUT_OF_SERVICE):
            return AlarmStatus(AlarmState.NORMAL, False, False, crit)  # nothing was shown; nothing to do
        if s is AlarmState.ACTIVE_UNACK:
            return AlarmStatus(AlarmState.RETURNED_UNACK, False, False, crit)
        if s is AlarmState.ACTIVE_ACK:
            return AlarmStatus(AlarmState.NORMAL, False, False, crit)
        return AlarmStatus(s, False, status.latched, crit)
    if action is Action.ACKNOWLEDGE:
        if s is AlarmState.ACTIVE_UNACK:
            return AlarmStatus(AlarmState.ACTIVE_ACK, status.active, status.latched, crit)
        if s is AlarmState.RETURNED_UNACK:
            return AlarmStatus(AlarmState.NORMAL, False, False, crit)
        raise InvalidTransition(f"an alert in state {s} cannot be acknowledged; only active_unack or "
                                "returned_unack alerts can")
    if action is Action.RESET:
        if not status.latched:
            raise InvalidTransition("only latched alerts are reset; acknowledge this one instead")
        if status.active:
            raise InvalidTransition("the condition is still present; reset it once the device reports it cleared")
        return AlarmStatus(AlarmState.NORMAL, False, False, crit)  # also from suppressed: nothing left to do
    if action is Action.SHELVE:
        if crit or status.latched:
            raise InvalidTransition("critical and latched alerts cannot be shelved; acknowledge it and handle it")
        if s in (AlarmState.NORMAL, *HIDDEN):
            raise InvalidTransition(f"an alert in state {s} cannot be shelved; only alerts in view can")
        return AlarmStatus(AlarmState.SHELVED, status.active, status.latched, crit)
    if action is Action.UNSHELVE:
        if s is not AlarmState.SHELVED:
            raise InvalidTransition(f"the alert is {s}, not shelved")
        return _back_in_view(status)
    if action is Action.SUPPRESS:
        if s is AlarmState.NORMAL:
            raise InvalidTransition("a closed alert cannot be suppressed")
        return AlarmStatus(AlarmState.SUPPRESSED, status.active, status.latched, crit)
    if action is Action.UNSUPPRESS:
        if s is not AlarmState.SUPPRESSED:
            raise InvalidTransition(f"the alert is {s}, not suppressed")
        return _back_in_view(status)
    if action is Action.REMOVE_FROM_SERVICE:
        if s is AlarmState.NORMAL:
            raise InvalidTransition("a closed alert cannot be taken out of service")
        return AlarmStatus(AlarmState.OUT_OF_SERVICE, status.active, status.latched, crit)
    if action is Action.RETURN_TO_SERVICE:
        if s is not AlarmState.OUT_OF_SERVICE:
            raise InvalidTransition(f"the alert is {s}, not out of service")
        return _back_in_view(status)
    raise InvalidTransition(f"unknown action {action}")


def opening_state(*, equipment_status: str, suppressed_by: str | None) -> tuple[AlarmState, str | None]:
    """The state a new alert opens in, and why when it is not ``active_unack``."""
    if equipment_status in ("scrapped", "cancelled"):
        return AlarmState.OUT_OF_SERVICE, f"out of service: the equipment is {equipment_status}"
    if equipment_status == "suspended":
        return AlarmState.SUPPRESSED, "suppressed by design: the equipment is out of service (停用)"
    if suppressed_by is not None:
        return AlarmState.SUPPRESSED, f"suppressed by design: covered by its cause {suppressed_by}"
    return AlarmState.ACTIVE_UNACK, None


def is_closed(state: AlarmState) -> bool:
    """A closed alert needs nothing more from anyone; a new occurrence opens a new alert."""
    return state is AlarmState.NORMAL
