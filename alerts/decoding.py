"""An alert worker's batch decoded once (pure): what the engine evaluates and what it must look up first.

A delivery that breaks the contract is left out here: the ingest dead-letters it, and there is nothing
to evaluate. Telemetry entries rejected for a physically impossible value are kept in their message:
they raise a sensor-fault alert.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from safewatch.contract import (
    ContractError,
    Event,
    GatewayStatus,
    Limits,
    TelemetryMessage,
    Topic,
    decode_body,
    equipment_named,
    parse_topic,
)
from safewatch.mqtt import Delivery

Message = TelemetryMessage | Event | GatewayStatus


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A batch's deliveries that keep the contract, each with its topic and decoded message."""

    limits: Limits
    items: tuple[tuple[Delivery, Topic, Message], ...]

    def equipment_codes(self) -> set[str]:
        """Every equipment code the batch names (valid entries, rejected entries, events)."""
        codes: set[str] = set()
        for _, _, msg in self.items:
            codes |= equipment_named(msg)
            if isinstance(msg, TelemetryMessage):  # a rejected entry may still raise a sensor-fault alert
                codes.update(r.equipment for r in msg.rejected if r.equipment is not None)
        return codes

    def status_gateways(self) -> set[str]:
        """The gateways whose status the batch carries."""
        return {topic.gateway_id for _, topic, msg in self.items if isinstance(msg, GatewayStatus)}


def decode_batch(deliveries: Iterable[Delivery], now_ms: int) -> DecodedBatch:
    """Decode each delivery once; ``now_ms`` bounds the timestamps accepted, as the ingest's decoder does."""
    limits = Limits(now_ms)
    items: list[tuple[Delivery, Topic, Message]] = []
    for d in deliveries:
        try:
            topic = parse_topic(d.topic)
            msg = decode_body(topic.kind, d.payload, limits)
        except ContractError:
            continue
        if msg is not None:  # None: a retained status cleared, nothing to evaluate
            items.append((d, topic, msg))
    return DecodedBatch(limits, tuple(items))
