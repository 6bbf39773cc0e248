"""Who a simulator run connects as (simulators.identity), and what a gateway without presence sends."""

from __future__ import annotations

import itertools

from simulators.faults import Fault
from simulators.gateway import Gateway
from simulators.identity import OWNER_PREFIX, Presence, client_prefix, owns_presence
from simulators.simulation import SimEquipment, Simulation
from simulators.transport import reconnect_delays


def test_a_run_with_explicit_faults_is_a_side_tool_unless_told_otherwise() -> None:
    assert owns_presence(Presence.AUTO, explicit_faults=False)
    assert not owns_presence(Presence.AUTO, explicit_faults=True)
    assert owns_presence(Presence.OWN, explicit_faults=True)
    assert not owns_presence(Presence.NONE, explicit_faults=False)


def test_the_owner_keeps_the_gateways_stable_ids_and_a_side_tool_has_its_runs_own() -> None:
    assert client_prefix(tool="simulate", run="a1b2c3", owner=True) == OWNER_PREFIX
    assert client_prefix(tool="simulate", run="a1b2c3", owner=False) == "simulate-a1b2c3"
    assert client_prefix(tool="replay", run="a1b2c3", owner=False) != client_prefix(tool="replay", run="d4e5f6",
                                                                                  owner=False)


def test_a_gateway_without_presence_has_no_will_and_never_says_online() -> None:
    owner, side = Gateway("gw-1", "150100"), Gateway("gw-1", "150100", presence=False)
    assert owner.will() is not None and side.will() is None
    assert [o.topic for o in owner.online(1)] == ["se/v1/150100/gw-1/status"]
    assert side.online(1) == []
    # A simulated disconnect and its end: the reconnection carries no status either.
    drop = {"disconnect": Fault("gw-1", "disconnect", 0, 10, scope="gateway")}
    assert [o.action for o in side.emit(5, {"e": {"speed": 1.0}}, [], drop)] == ["drop"]
    after = side.emit(20, {"e": {"speed": 1.0}}, [], {})
    assert after[0].action == "reconnect"
    assert not any(o.topic.endswith("/status") for o in after)


def test_a_simulation_says_online_again_after_a_lost_connection_only_when_it_owns_presence() -> None:
    equipment = [SimEquipment("311015000202400001", "3000", {"rated_speed": 1.0, "floors": 6.0}, "gw-1", "150100")]
    owner, side = Simulation(equipment), Simulation(equipment, presence=False)
    assert len(owner.connect(0)) == 1 and side.connect(0) == []
    again = owner.reconnected("gw-1", 5_000)
    assert [(o.topic, o.retain) for o in again] == [("se/v1/150100/gw-1/status", True)]
    assert b'"online"' in again[0].payload and b"5000" in again[0].payload
    assert side.reconnected("gw-1", 5_000) == []


def test_lost_connections_are_retried_from_a_second_doubling_to_half_a_minute() -> None:
    assert list(itertools.islice(reconnect_delays(), 8)) == [1, 2, 4, 8, 16, 30, 30, 30]
