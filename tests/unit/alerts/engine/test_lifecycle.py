"""The ISA-18.2 lifecycle: every state, latching, shelving, suppression by design, out of service."""

from __future__ import annotations

import pytest

from alerts.engine.lifecycle import (
    Action,
    AlarmState,
    AlarmStatus,
    InvalidTransition,
    opening_state,
    transition,
)

S = AlarmState


def walk(status: AlarmStatus, *actions: Action) -> list[str]:
    states = []
    for action in actions:
        status = transition(status, action)
        states.append(str(status.state))
    return states


def test_standard_cycles() -> None:
    start = AlarmStatus(S.ACTIVE_UNACK, True)
    assert walk(start, Action.ACKNOWLEDGE, Action.CONDITION_OFF) == ["active_ack", "normal"]
    assert walk(start, Action.CONDITION_OFF, Action.ACKNOWLEDGE) == ["returned_unack", "normal"]
    assert walk(start, Action.CONDITION_OFF, Action.CONDITION_ON) == ["returned_unack", "active_unack"]


def test_latched_stays_until_reset_after_the_condition_goes() -> None:
    trapped = AlarmStatus(S.ACTIVE_UNACK, True, latched=True, critical=True)
    with pytest.raises(InvalidTransition, match="still present"):
        transition(trapped, Action.RESET)
    after = transition(trapped, Action.CONDITION_OFF)
    assert after.state is S.ACTIVE_UNACK and not after.active and after.latched
    assert walk(after, Action.ACKNOWLEDGE, Action.RESET) == ["active_ack", "normal"]
    with pytest.raises(InvalidTransition, match="acknowledge"):
        transition(AlarmStatus(S.ACTIVE_UNACK, True), Action.RESET)
    # Latched while its equipment was out of service: the reset closes it too.
    assert transition(AlarmStatus(S.SUPPRESSED, False, latched=True), Action.RESET).state is S.NORMAL


def test_shelving_hides_and_returns_where_the_condition_says() -> None:
    alert = AlarmStatus(S.ACTIVE_ACK, True)
    shelved = transition(alert, Action.SHELVE)
    assert shelved.state is S.SHELVED
    assert transition(shelved, Action.CONDITION_ON).state is S.SHELVED
    assert transition(shelved, Action.UNSHELVE).state is S.ACTIVE_UNACK  # still active: shown again, unacked
    gone = transition(shelved, Action.CONDITION_OFF)
    assert gone.state is S.SHELVED and not gone.active
    assert transition(gone, Action.UNSHELVE).state is S.NORMAL


def test_critical_and_latched_cannot_be_shelved() -> None:
    for status in (AlarmStatus(S.ACTIVE_UNACK, True, critical=True), AlarmStatus(S.ACTIVE_UNACK, True, latched=True)):
        with pytest.raises(InvalidTransition, match="cannot be shelved"):
            transition(status, Action.SHELVE)
    with pytest.raises(InvalidTransition):
        transition(AlarmStatus(S.NORMAL, False), Action.SHELVE)
    with pytest.raises(InvalidTransition, match="not shelved"):
        transition(AlarmStatus(S.ACTIVE_ACK, True), Action.UNSHELVE)


def test_suppressed_and_out_of_service_close_when_the_condition_goes() -> None:
    for hidden, leave in ((S.SUPPRESSED, Action.UNSUPPRESS), (S.OUT_OF_SERVICE, Action.RETURN_TO_SERVICE)):
        status = AlarmStatus(hidden, True)
        assert transition(status, Action.CONDITION_OFF).state is S.NORMAL
        assert transition(status, leave).state is S.ACTIVE_UNACK
        with pytest.raises(InvalidTransition):
            transition(status, Action.ACKNOWLEDGE)
    assert walk(AlarmStatus(S.ACTIVE_ACK, True), Action.SUPPRESS, Action.UNSUPPRESS) == ["suppressed", "active_unack"]
    assert walk(AlarmStatus(S.ACTIVE_ACK, True), Action.REMOVE_FROM_SERVICE, Action.RETURN_TO_SERVICE) == [
        "out_of_service", "active_unack"]


def test_opening_state() -> None:
    assert opening_state(equipment_status="in_use", suppressed_by=None) == (S.ACTIVE_UNACK, None)
    assert opening_state(equipment_status="in_use", suppressed_by="x.high_high")[0] is S.SUPPRESSED
    assert opening_state(equipment_status="suspended", suppressed_by=None)[0] is S.SUPPRESSED
    assert opening_state(equipment_status="scrapped", suppressed_by=None)[0] is S.OUT_OF_SERVICE
