"""Turn a batch of raw MQTT messages into rows to write (pure: no I/O, no clock, no logging).

Everything a message carries ends up either in the rows to write or in a dead letter with its
reason; nothing is dropped. A message makes at most one dead letter, whatever is wrong in it: its raw
bytes, the first `MAX_REASONS_SHOWN` problems in words and every problem counted by reason. (One per
bad entry let a 254 KiB message of 130,000 bad entries write 130,000 rows, 40 MB, and hold gigabytes.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from safewatch.contract import (
    METRICS,
    METRICS_BY_KEY,
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


class Bound(NamedTuple):
    """What the registry says about one equipment code."""

    equipment_id: int
    gateway_id: str | None
    category: str


class RawMessage(NamedTuple):
    topic: str
    payload: bytes


class DeadLetter(NamedTuple):
    """One message that broke the contract, whole or in part: its raw bytes and why."""

    topic: str
    gateway_id: str | None
    equipment_code: str | None
    reason: str  # the commonest problem's
    detail: str
    payload: bytes
    counts: Mapping[str, int] | None = None  # problems by reason; None: the message as a whole, once

    def reasons(self) -> Mapping[str, int]:
        """What to count: each problem by its reason."""
        return self.counts if self.counts else {self.reason: 1}


def dead_letter_key(topic: str, payload: bytes) -> bytes:
    """The identity of a message for its dead letter: a redelivery (same topic, same bytes) is the same one.

    Gateways stamp their messages, so identical bytes on one topic are the same message sent again.
    """
    return hashlib.sha256(topic.encode("utf-8", "surrogatepass") + b"\x00" + payload).digest()


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
    ts_ms: int | None  # the gateway's own time; None for a last will, which carries none
    heard_ms: int  # when the ingest received it (its batch's clock)


# Reasons decided here, beyond the contract's own.
UNKNOWN_EQUIPMENT = "unknown_equipment"
NOT_BOUND = "equipment_not_bound_to_gateway"
WRONG_CATEGORY = "metric_not_for_category"
# The database refused the message although it kept the contract (a gap in the contract's checks):
# dead-lettered whole, so that one message never stops the ingest.
REFUSED_BY_DATABASE = "refused_by_database"
INGEST_REASONS = (UNKNOWN_EQUIPMENT, NOT_BOUND, WRONG_CATEGORY, REFUSED_BY_DATABASE)
#: Problems of one message described in its dead letter's detail; the rest are counted by reason.
MAX_REASONS_SHOWN = 20
_DETAIL_SHOWN = 300  # characters of each problem's description


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
            batch.statuses.append(StatusRow(gw, body.state, body.ts_ms, limits.now_ms))
    return batch


class _Problems:
    """What is wrong in one message, gathered into its one dead letter (bounded, however many there are)."""

    __slots__ = ("counts", "first_code", "shown")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.shown: list[tuple[str, str]] = []
        self.first_code: str | None = None

    def add(self, reason: str, detail: str, code: str | None, n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n
        if len(self.shown) < MAX_REASONS_SHOWN:
            self.shown.append((reason, detail[:_DETAIL_SHOWN]))
        if self.first_code is None:
            self.first_code = code

    def dead_letter(self, m: RawMessage, gw: str) -> DeadLetter:
        total = sum(self.counts.values())
        reason = max(self.counts, key=self.counts.__getitem__)  # the commonest; the first of equals
        if total == 1:
            detail = self.shown[0][1]
        else:
            tally = ", ".join(f"{r} ×{n}" for r, n in self.counts.items())
            listed = "; ".join(f"{i}. [{r}] {d}" for i, (r, d) in enumerate(self.shown, 1))
            more = f" (the first {len(self.shown)})" if total > len(self.shown) else ""
            detail = f"{total} problems in this message: {tally}. Each{more}: {listed}"
        return DeadLetter(m.topic, gw, self.first_code, reason, detail, m.payload, self.counts)


def _telemetry(batch: Batch, m: RawMessage, gw: str, registry: Mapping[str, Bound], msg: TelemetryMessage) -> None:
    problems = _Problems()
    for rej in msg.rejected:
        problems.add(rej.reason, rej.detail, rej.equipment)
    if msg.rejected_counts:  # every rejection, also those the decoder only counted
        problems.counts = dict(msg.rejected_counts)
    refused: set[str] = set()
    readings = batch.readings
    for e in msg.entries:
        bound = registry.get(e.equipment)
        if bound is None or bound.gateway_id != gw:
            if e.equipment not in refused:  # once an equipment and message
                refused.add(e.equipment)
                problems.add(*_refusal(e.equipment, gw, bound), e.equipment)
            continue
        if e.values.keys() <= CATEGORY_KEYS.get(bound.category, frozenset()):
            readings.add(bound.equipment_id, e.ts_ms, e.values)
            continue
        for metric, value in e.values.items():  # some metric of another category: refuse those alone
            spec = METRICS_BY_KEY[metric]
            if spec.category != bound.category:
                problems.add(WRONG_CATEGORY, f"metric {metric} belongs to category {spec.category}, equipment "
                                             f"{e.equipment} is {bound.category}", e.equipment)
            else:
                readings.append(ReadingRow(bound.equipment_id, spec.id, e.ts_ms, value))
    if problems.counts:
        batch.dead_letters.append(problems.dead_letter(m, gw))


def refused_by_database(m: RawMessage, error: str) -> DeadLetter:
    """The dead letter of a message the database refused (the whole message, its raw bytes)."""
    try:
        gw: str | None = parse_topic(m.topic).gateway_id
    except ContractError:
        gw = None
    return DeadLetter(m.topic, gw, None, REFUSED_BY_DATABASE,
                      f"the database refused this message ({error[:_DETAIL_SHOWN]}); it is kept here whole. "
                      "Report it: the contract should have rejected it with a reason", m.payload)
