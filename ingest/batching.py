"""Turn a batch of raw MQTT messages into rows to write (pure: no I/O, no clock, no logging).

Everything a message carries ends up either in the rows to write or in a dead letter with its
reason; nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from safewatch.contract import (
    METRICS,
    METRICS_BY_KEY,
    ContractError,
    Entry,
    Event,
    GatewayStatus,
    Limits,
    TelemetryMessage,
    Topic,
    decode_body,
    equipment_named,
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
class Readings:
    """A batch's readings as entries: one equipment at one instant, its values by metric key.

    Entries are kept as the decoder gave them (its values dict, keys checked against the catalogue
    and all of one category), and the pivot makes the wide rows from them in a few numpy operations:
    a batch of shape (b) holds 20,000 readings in 2,500 entries, and exploding them into one
    (equipment, metric, time, value) each cost more than the rows. Iterating yields `ReadingRow`s,
    for tests and the slow paths; ``len`` counts readings.
    """

    equipment_ids: list[int] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)  # an entry's instant
    values: list[dict[str, float]] = field(default_factory=list)
    count: int = 0  # readings in all the entries

    @classmethod
    def of(cls, rows: Iterable[ReadingRow]) -> Readings:
        readings = cls()
        for row in rows:
            readings.append(row)
        return readings

    def append(self, row: ReadingRow) -> None:
        """One reading, as an entry of its own."""
        self.add(row.equipment_id, row.ts_ms, {METRIC_KEYS[row.metric_id]: row.value})

    def add(self, equipment_id: int, ts_ms: int, values: dict[str, float]) -> None:
        """All of one entry's values (metric keys of one category, already checked against the catalogue)."""
        self.equipment_ids.append(equipment_id)
        self.ts_ms.append(ts_ms)
        self.values.append(values)
        self.count += len(values)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[ReadingRow]:
        for equipment_id, ts_ms, values in zip(self.equipment_ids, self.ts_ms, self.values, strict=True):
            for metric, value in values.items():
                yield ReadingRow(equipment_id, METRIC_IDS[metric], ts_ms, value)


METRIC_IDS: dict[str, int] = {m.key: m.id for m in METRICS}
METRIC_KEYS: dict[int, str] = {m.id: m.key for m in METRICS}
# Per category, the metric keys that belong to it: one subset test per entry instead of a check per reading.
CATEGORY_KEYS: dict[str, frozenset[str]] = {
    category: frozenset(m.key for m in METRICS if m.category == category) for category in {m.category for m in METRICS}}


@dataclass(slots=True)
class Batch:
    """Rows decoded from one batch of messages, ready for one transaction."""

    readings: Readings = field(default_factory=Readings)
    events: list[EventRow] = field(default_factory=list)
    statuses: list[StatusRow] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=dict)  # kind → messages

    def __post_init__(self) -> None:
        if not isinstance(self.readings, Readings):
            self.readings = Readings.of(self.readings)


class Decoded(NamedTuple):
    """One message decoded but not yet bound to the registry: its topic and body, or why it has none."""

    message: RawMessage
    topic: Topic | None
    body: TelemetryMessage | Event | GatewayStatus | None  # None: an error, or a retained status cleared
    error: ContractError | None


def decode(messages: Iterable[RawMessage], limits: Limits) -> list[Decoded]:
    """Decode and validate every message of a batch; nothing here needs the registry."""
    out = []
    for m in messages:
        try:
            topic = parse_topic(m.topic)
        except ContractError as exc:
            out.append(Decoded(m, None, None, exc))
            continue
        try:
            body = decode_body(topic.kind, m.payload, limits)
        except ContractError as exc:
            out.append(Decoded(m, topic, None, exc))
            continue
        out.append(Decoded(m, topic, body, None))
    return out


def codes_of(decoded: Iterable[Decoded]) -> set[str]:
    """Equipment codes a decoded batch names (so the shell can refresh its registry cache before `bind`)."""
    codes: set[str] = set()
    for d in decoded:
        codes |= equipment_named(d.body)
    return codes


def _refusal(code: str, gateway_id: str, bound: Bound | None) -> tuple[str, str]:
    """Why ``gateway_id`` may not report ``code`` (unknown, or bound elsewhere), and what to do about it."""
    if bound is None:
        return UNKNOWN_EQUIPMENT, (f"equipment {code} is not in the registry; register it "
                                   "(POST /api/v1/equipment) before its gateway reports it")
    return NOT_BOUND, (f"gateway {gateway_id} published for equipment {code} bound to "
                       f"{bound.gateway_id or 'no gateway'}; fix the binding (PATCH /api/v1/equipment/{code}) "
                       "or the gateway's configuration")


def assemble(messages: Iterable[RawMessage], registry: Mapping[str, Bound], limits: Limits) -> Batch:
    """Decode, validate and bind every message of a batch."""
    return bind(decode(messages, limits), registry, limits)


def bind(decoded: Iterable[Decoded], registry: Mapping[str, Bound], limits: Limits) -> Batch:
    """Bind decoded messages to the registry: rows to write, or dead letters with their reasons."""
    batch = Batch()
    for m, topic, body, error in decoded:
        if topic is None:
            assert error is not None
            batch.dead_letters.append(DeadLetter(m.topic, None, None, error.reason, error.detail, m.payload))
            continue
        gw = topic.gateway_id
        batch.received[topic.kind] = batch.received.get(topic.kind, 0) + 1
        if error is not None:
            batch.dead_letters.append(DeadLetter(m.topic, gw, None, error.reason, error.detail, m.payload))
        elif isinstance(body, TelemetryMessage):
            _telemetry(batch, m, gw, registry, body)
        elif isinstance(body, Event):
            bound = registry.get(body.equipment)
            if bound is not None and bound.gateway_id == gw:
                details = {**body.details, **({"extra": body.extra} if body.extra else {})}
                batch.events.append(EventRow(bound.equipment_id, body.type, body.ts_ms, body.active, gw, details))
            else:
                batch.dead_letters.append(DeadLetter(m.topic, gw, body.equipment,
                                                     *_refusal(body.equipment, gw, bound), m.payload))
        elif isinstance(body, GatewayStatus):
            batch.statuses.append(StatusRow(gw, body.state, body.ts_ms or limits.now_ms))
    return batch


def _telemetry(batch: Batch, m: RawMessage, gw: str, registry: Mapping[str, Bound], msg: TelemetryMessage) -> None:
    for rej in msg.rejected:
        batch.dead_letters.append(DeadLetter(m.topic, gw, rej.equipment, rej.reason, rej.detail,
                                             orjson.dumps(rej.entry)))
    refused: set[str] = set()
    readings = batch.readings
    for e in msg.entries:
        bound = registry.get(e.equipment)
        if bound is None or bound.gateway_id != gw:
            if e.equipment not in refused:
                refused.add(e.equipment)
                _refuse(batch, m.topic, gw, e, msg.entries, _refusal(e.equipment, gw, bound))
            continue
        if e.values.keys() <= CATEGORY_KEYS.get(bound.category, frozenset()):
            readings.add(bound.equipment_id, e.ts_ms, e.values)
            continue
        for metric, value in e.values.items():  # some metric of another category: refuse those alone
            spec = METRICS_BY_KEY[metric]
            if spec.category != bound.category:
                batch.dead_letters.append(DeadLetter(
                    m.topic, gw, e.equipment, WRONG_CATEGORY,
                    f"metric {metric} belongs to category {spec.category}, equipment {e.equipment} is "
                    f"{bound.category}", orjson.dumps({"equipment": e.equipment, "ts": e.ts_ms,
                                                       "values": {metric: value}})))
            else:
                readings.append(ReadingRow(bound.equipment_id, spec.id, e.ts_ms, value))


def _refuse(batch: Batch, topic: str, gw: str, e: Entry, entries: tuple[Entry, ...],
            why: tuple[str, str]) -> None:
    """One dead letter for an equipment this gateway may not report: all its readings of the message."""
    values = {metric: value for x in entries if x.equipment == e.equipment for metric, value in x.values.items()}
    entry = {"equipment": e.equipment, "values": values, "ts": e.ts_ms}
    batch.dead_letters.append(DeadLetter(topic, gw, e.equipment, *why, orjson.dumps(entry)))
