"""A simulated gateway (pure): batches its equipment into contract messages and misbehaves on demand.

It returns what to do as `Outgoing` values (publish, drop the connection, reconnect); the MQTT shell
(`simulators.transport`) carries them out. Misbehaviour comes from gateway-scope `Fault`s:

- ``disconnect``: the connection drops without a DISCONNECT, so the broker publishes the last will
  (``offline``); readings are buffered (store and forward) and sent in a burst after reconnecting.
- ``clock_skew``: every timestamp is off by ``magnitude`` ms (default +10 min).
- ``duplicate``: every message is sent twice.
- ``out_of_order``: messages are held and released newest first, ``magnitude`` (default 3) at a time.
- ``burst``: messages are held during the window and all sent at its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from safewatch.contract import Event, GatewayState, Kind, build_topic, encode_event, encode_status, encode_telemetry
from simulators.faults import Fault

#: Equipment per telemetry message: keeps a message far below the contract's 256 KiB limit.
MAX_EQUIPMENT_PER_MESSAGE = 200
#: What a disconnected gateway keeps for later (its store-and-forward memory, in messages).
MAX_HELD = 10_000


class Outgoing(NamedTuple):
    """One thing a gateway does: publish a message, drop its connection, or reconnect."""

    gateway_id: str
    action: str  # "publish" | "drop" | "reconnect"
    topic: str = ""
    payload: bytes = b""
    retain: bool = False


class Gateway:
    """One gateway's batching and misbehaviour; everything it sends is a function of its inputs."""

    def __init__(self, gateway_id: str, league: str, *, presence: bool = True) -> None:
        self.id = gateway_id
        self.presence = presence  # owns the retained status (simulators.identity); a side tool does not
        self.league = league
        self.telemetry_topic = build_topic(league, gateway_id, Kind.TELEMETRY)
        self.event_topic = build_topic(league, gateway_id, Kind.EVENT)
        self.status_topic = build_topic(league, gateway_id, Kind.STATUS)
        self.connected = True
        self.held: list[Outgoing] = []
        self.holding: str | None = None  # the fault that holds messages back

    def will(self) -> tuple[str, bytes] | None:
        """The last will: retained ``offline`` on the status topic, with no time (none without presence)."""
        if not self.presence:
            return None
        return self.status_topic, encode_status(GatewayState.OFFLINE)

    def online(self, t_ms: int) -> list[Outgoing]:
        """The retained ``online`` status sent on every (re)connection (nothing without presence)."""
        if not self.presence:
            return []
        return [Outgoing(self.id, "publish", self.status_topic, encode_status(GatewayState.ONLINE, t_ms), True)]

    def emit(self, t_ms: int, readings: Mapping[str, dict[str, float]], events: list[Event],
             faults: Mapping[str, Fault]) -> list[Outgoing]:
        """What the gateway does at ``t_ms`` with these readings and events, under its active faults."""
        skew = faults.get("clock_skew")
        offset = 0 if skew is None else int(skew.magnitude if skew.magnitude is not None else 600_000)
        messages = self._messages(t_ms + offset, readings, events, offset)
        out: list[Outgoing] = []
        if "disconnect" in faults:
            if self.connected:
                self.connected = False
                out.append(Outgoing(self.id, "drop"))
            self._hold(messages)
            return out
        if not self.connected:
            self.connected = True
            out += [Outgoing(self.id, "reconnect"), *self.online(t_ms)]
            out += self._release(newest_first=False)
        for kind in ("burst", "out_of_order"):
            if kind in faults:
                self.holding = kind
                self._hold(messages)
                if kind == "out_of_order":
                    fault = faults[kind]
                    depth = int(fault.magnitude) if fault.magnitude is not None else 3
                    if len(self.held) >= max(2, depth):
                        out += self._release(newest_first=True)
                return self._duplicated(out, faults)
        if self.held:  # a hold ended: what was kept goes first
            out += self._release(newest_first=self.holding == "out_of_order")
        out += messages
        return self._duplicated(out, faults)

    def _messages(self, ts_ms: int, readings: Mapping[str, dict[str, float]], events: list[Event],
                  offset: int) -> list[Outgoing]:
        out = []
        codes = list(readings)
        for i in range(0, len(codes), MAX_EQUIPMENT_PER_MESSAGE):
            chunk = {code: readings[code] for code in codes[i:i + MAX_EQUIPMENT_PER_MESSAGE]}
            out.append(Outgoing(self.id, "publish", self.telemetry_topic, encode_telemetry(chunk, ts_ms)))
        for event in events:
            shifted = event if not offset else Event(event.equipment, event.type, event.ts_ms + offset, event.active,
                                                     event.details)
            out.append(Outgoing(self.id, "publish", self.event_topic, encode_event(shifted)))
        return out

    def _hold(self, messages: list[Outgoing]) -> None:
        self.held.extend(messages)
        del self.held[:-MAX_HELD]  # the oldest are lost when the gateway's memory is full

    def _release(self, *, newest_first: bool) -> list[Outgoing]:
        out = self.held[::-1] if newest_first else self.held
        self.held = []
        return out

    @staticmethod
    def _duplicated(out: list[Outgoing], faults: Mapping[str, Fault]) -> list[Outgoing]:
        if "duplicate" not in faults:
            return out
        return [copy for o in out for copy in ((o, o) if o.action == "publish" and not o.retain else (o,))]
