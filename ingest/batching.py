"""Turn a batch of raw MQTT messages into rows to write (pure: no I/O, no clock, no logging).

Everything a message carries ends up either in the rows to write or in a dead letter with its
reason; nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from safewatch.contract import (
    METRICS_BY_KEY,
    ContractError,
    Kind,
    Limits,
    decode_event,
    decode_status,
    decode_telemetry,
    equipment_codes,
    parse_topic,
)


class Bound(NamedTuple):
    """What the registry says about one equipment code."""

    equipment_id: int
    gateway_id: str | None
    category: str


class RawMessage(NamedTuple):
    topic: str
    payload: bytes


class DeadLetter(NamedTuple):
    topic: str
    gateway_id: str | None
    equipment_code: str | None
    reason: str
    detail: str
    payload: bytes


class ReadingRow(NamedTuple):
    equipment_id: int
    metric_id: int
    ts_ms: int
    value: float


class EventRow(NamedTuple):
    equipment_id: int
    type: str
    ts_ms: int
    active: bool
    gateway_id: str
    details: dict[str, Any]


class StatusRow(NamedTuple):
    gateway_id: str
    state: str
    ts_ms: int


# Reasons decided here, beyond the contract's own.
UNKNOWN_EQUIPMENT = "unknown_equipment"
NOT_BOUND = "equipment_not_bound_to_gateway"
WRONG_CATEGORY = "metric_not_for_category"
INGEST_REASONS = (UNKNOWN_EQUIPMENT, NOT_BOUND, WRONG_CATEGORY)


@dataclass(slots=True)
class Batch:
    """Rows decoded from one batch of messages, ready for one transaction."""

    readings: list[ReadingRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    statuses: list[StatusRow] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=dict)  # kind → messages


def codes_in(messages: Iterable[RawMessage]) -> set[str]:
    """Equipment codes named by a batch (so the shell can refresh its registry cache first)."""
    codes: set[str] = set()
    for m in messages:
        if m.topic.endswith(("/telemetry", "/event")):
            codes |= equipment_codes(m.payload)
    return codes


def _check_binding(code: str, gateway_id: str, registry: Mapping[str, Bound]) -> tuple[str, str] | Bound:
    bound = registry.get(code)
    if bound is None:
        return UNKNOWN_EQUIPMENT, (f"equipment {code} is not in the registry; register it "
                                   "(POST /api/v1/equipment) before its gateway reports it")
    if bound.gateway_id != gateway_id:
        return NOT_BOUND, (f"gateway {gateway_id} published for equipment {code} bound to "
                           f"{bound.gateway_id or 'no gateway'}; fix the binding (PATCH /api/v1/equipment/{code}) "
                           "or the gateway's configuration")
    return bound


def assemble(messages: Iterable[RawMessage], registry: Mapping[str, Bound], limits: Limits) -> Batch:
    """Decode, validate and bind every message of a batch."""
    batch = Batch()
    for m in messages:
        try:
            topic = parse_topic(m.topic)
        except ContractError as exc:
            batch.dead_letters.append(DeadLetter(m.topic, None, None, exc.reason, exc.detail, m.payload))
            continue
        gw = topic.gateway_id
        batch.received[topic.kind] = batch.received.get(topic.kind, 0) + 1
        try:
            if topic.kind is Kind.TELEMETRY:
                _telemetry(batch, m, gw, registry, limits)
            elif topic.kind is Kind.EVENT:
                event = decode_event(m.payload, limits)
                bound = _check_binding(event.equipment, gw, registry)
                if isinstance(bound, Bound):
                    details = {**event.details, **({"extra": event.extra} if event.extra else {})}
                    batch.events.append(EventRow(bound.equipment_id, event.type, event.ts_ms, event.active, gw,
                                                 details))
                else:
                    batch.dead_letters.append(DeadLetter(m.topic, gw, event.equipment, *bound, m.payload))
            else:
                if not m.payload:  # a retained status being cleared
                    continue
                status = decode_status(m.payload, limits)
                batch.statuses.append(StatusRow(gw, status.state, status.ts_ms or limits.now_ms))
        except ContractError as exc:
            batch.dead_letters.append(DeadLetter(m.topic, gw, None, exc.reason, exc.detail, m.payload))
    return batch


def _telemetry(batch: Batch, m: RawMessage, gw: str, registry: Mapping[str, Bound], limits: Limits) -> None:
    msg = decode_telemetry(m.payload, limits)
    for rej in msg.rejected:
        batch.dead_letters.append(DeadLetter(m.topic, gw, rej.equipment, rej.reason, rej.detail,
                                             orjson.dumps(rej.entry)))
    refused: set[str] = set()
    for r in msg.readings:
        if r.equipment in refused:
            continue
        bound = _check_binding(r.equipment, gw, registry)
        if not isinstance(bound, Bound):
            refused.add(r.equipment)
            entry = {"equipment": r.equipment, "values": {x.metric: x.value for x in msg.readings
                                                          if x.equipment == r.equipment}, "ts": r.ts_ms}
            batch.dead_letters.append(DeadLetter(m.topic, gw, r.equipment, *bound, orjson.dumps(entry)))
            continue
        spec = METRICS_BY_KEY[r.metric]
        if spec.category != bound.category:
            batch.dead_letters.append(DeadLetter(
                m.topic, gw, r.equipment, WRONG_CATEGORY,
                f"metric {r.metric} belongs to category {spec.category}, equipment {r.equipment} is {bound.category}",
                orjson.dumps({"equipment": r.equipment, "ts": r.ts_ms, "values": {r.metric: r.value}})))
            continue
        batch.readings.append(ReadingRow(bound.equipment_id, spec.id, r.ts_ms, r.value))
