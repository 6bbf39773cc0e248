"""Payloads on the device topics, and their pure decoders and encoders.

Telemetry (``…/telemetry``), one message carrying readings of many equipment::

    {"ts": 1795593600000,
     "readings": [{"equipment": "110011502202400001", "ts": "2026-11-25T08:00:00Z",
                   "values": {"drum_pressure": 1.02, "drum_level": -12}}]}

Event (``…/event``)::

    {"equipment": "311011502202400007", "ts": 1795593600000, "type": "passenger_trapped",
     "active": true, "details": {"floor": 7}}

Status (``…/status``, retained; the last will publishes ``{"state": "offline"}``)::

    {"state": "online", "ts": 1795593600000}

Timestamps are epoch milliseconds or RFC 3339 strings with an offset. Unknown fields are kept
(``extra``); unknown metrics, out-of-range values and bad timestamps reject only the entry they
are in, and the rest of the message is used.

Decoding is bounded by what it keeps, not only by the payload's size: a message's rejections are
counted by reason, but only the first `MAX_REJECTED_KEPT` are kept with their entry (a 256 KiB
message of 130,000 bad entries keeps 256). Every decoder raises `ContractError` and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import compress, repeat
from operator import attrgetter, is_, itemgetter, methodcaller
from types import GenericAlias
from typing import Annotated, Any, NamedTuple, Protocol

import msgspec
import orjson
from msgspec import UNSET, UnsetType

from safewatch.contract.catalogue import EVENTS_BY_TYPE, METRICS_BY_KEY
from safewatch.contract.errors import (
    BadTimestamp,
    ContractError,
    MalformedPayload,
    PayloadTooLarge,
    UnknownEventType,
    UnknownMetric,
    ValueOutOfRange,
)
from safewatch.contract.text import storable_json
from safewatch.contract.topics import Kind

#: Default bound on one payload; brokers and gateways should be configured to match.
MAX_PAYLOAD_BYTES = 256 * 1024
#: Rejected entries kept, with their entry, per telemetry message; the rest are only counted. A gateway
#: batch of 50 equipment with 5 bad sensors each keeps all of them (the alert worker raises a
#: sensor-fault alert from each), and a hostile message cannot make the decoder keep more.
MAX_REJECTED_KEPT = 256


@dataclass(frozen=True, slots=True)
class Limits:
    """What the decoder accepts, relative to ``now_ms`` (all epoch milliseconds)."""

    now_ms: int
    max_future_ms: int = 5 * 60_000
    max_past_ms: int = 7 * 24 * 3_600_000
    max_payload_bytes: int = MAX_PAYLOAD_BYTES


class Reading(NamedTuple):
    """One metric value of one equipment at one instant (epoch ms)."""

    equipment: str
    metric: str
    ts_ms: int
    value: float


class Entry(NamedTuple):
    """The valid readings of one equipment at one instant: metric key → value (floats, in range).

    Decoders hand these on whole rather than one `Reading` each: a gateway batch of 50 equipment is
    50 entries, not 400 objects, and the workers turn each entry into rows with C-level list work.
    """

    equipment: str
    ts_ms: int
    values: dict[str, float]


class Rejected(NamedTuple):
    """One entry of a message that broke the contract; the rest of the message is kept."""

    reason: str
    detail: str
    equipment: str | None
    entry: Any


@dataclass(frozen=True, slots=True)
class TelemetryMessage:
    """One decoded telemetry message."""

    entries: tuple[Entry, ...]
    rejected: tuple[Rejected, ...] = ()  # the first `MAX_REJECTED_KEPT`, in message order
    extra: dict[str, Any] = field(default_factory=dict)
    rejected_counts: dict[str, int] = field(default_factory=dict)  # every rejection, by reason

    @property
    def rejected_total(self) -> int:
        """How many entries (or readings of one) were rejected, kept or not."""
        return sum(self.rejected_counts.values()) if self.rejected_counts else len(self.rejected)

    @property
    def readings(self) -> tuple[Reading, ...]:
        """Every valid reading, one at a time, entry by entry in message order."""
        return tuple(Reading(e.equipment, metric, e.ts_ms, value) for e in self.entries
                     for metric, value in e.values.items())


@dataclass(frozen=True, slots=True)
class Event:
    """A discrete event of one equipment (``active`` false when the device reports it cleared)."""

    equipment: str
    type: str
    ts_ms: int
    active: bool = True
    details: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class GatewayState(StrEnum):
    """A gateway's connection state."""

    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """A gateway's retained status (``ts_ms`` None when the last will carried no time)."""

    state: GatewayState
    ts_ms: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_TELEMETRY_FIELDS = frozenset({"ts", "readings"})
_EVENT_FIELDS = frozenset({"equipment", "ts", "type", "active", "details"})


def _check_size(payload: bytes, limits: Limits) -> None:
    if len(payload) > limits.max_payload_bytes:
        raise PayloadTooLarge(f"payload of {len(payload)} bytes is over the {limits.max_payload_bytes}-byte limit")


def _load(payload: bytes, limits: Limits) -> dict[str, Any]:
    _check_size(payload, limits)
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedPayload(f"expected a JSON object, got {type(doc).__name__}")
    return doc


def parse_timestamp(value: Any, limits: Limits) -> int:
    """Epoch ms from an epoch-ms number or an RFC 3339 string, inside the accepted window."""
    if type(value) is int and limits.now_ms - limits.max_past_ms <= value <= limits.now_ms + limits.max_future_ms:
        return value  # the common case, once per message and instant
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadTimestamp(f"timestamp {value!r} is neither epoch milliseconds nor an RFC 3339 string")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise BadTimestamp(f"timestamp {value!r} is not RFC 3339") from None
        if parsed.tzinfo is None:
            raise BadTimestamp(f"timestamp {value!r} has no UTC offset; add 'Z' or '+08:00'")
        ts_ms = int(parsed.timestamp() * 1000)
    else:
        if not math.isfinite(value):
            raise BadTimestamp(f"timestamp {value!r} is not finite")
        ts_ms = int(value)
    if ts_ms > limits.now_ms + limits.max_future_ms:
        raise BadTimestamp(f"timestamp {value!r} is more than {limits.max_future_ms // 1000} s in the future; "
                           "check the gateway's clock (NTP)")
    if ts_ms < limits.now_ms - limits.max_past_ms:
        hint = " (it looks like seconds: send milliseconds)" if 0 < ts_ms < 10**11 else ""
        raise BadTimestamp(f"timestamp {value!r} is older than {limits.max_past_ms // 3_600_000} h{hint}")
    return ts_ms


def _number(metric: str, value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float):
        raise MalformedPayload(f"value of {metric!r} is {type(value).__name__}; expected a number or boolean")
    number = float(value)
    spec = METRICS_BY_KEY[metric]
    if not (spec.lo <= number <= spec.hi):  # also catches NaN
        raise ValueOutOfRange(f"{metric}={value!r} {spec.unit} is outside the physical range "
                              f"[{spec.lo:g}, {spec.hi:g}]")
    return number


_CODE_MIN, _CODE_MAX = 4, 32  # an equipment code's length: ASCII letters and digits


def _equipment_code(value: Any) -> str:
    if (not isinstance(value, str) or not (_CODE_MIN <= len(value) <= _CODE_MAX) or not value.isascii()
            or not value.isalnum()):
        raise MalformedPayload(f"equipment {value!r} is not an equipment code "
                               f"({_CODE_MIN}-{_CODE_MAX} ASCII letters and digits)")
    return value


# Per metric key: (lo, hi) of its physical range, looked up once per reading on the fast path.
_RANGES: dict[str, tuple[float, float]] = {m.key: (m.lo, m.hi) for m in METRICS_BY_KEY.values()}
_MISSING = object()


def _valid_values(values: dict[str, Any]) -> dict[str, float] | None:
    """``values`` itself when every metric is known, a number (not a boolean) and in range; else None.

    The fast path: one dict lookup, one type test and one comparison a reading, and orjson's own dict
    is handed on (JSON integers stay ints: every consumer treats them as the floats they compare
    equal to). Anything else goes the slow way, metric by metric.
    """
    ranges = _RANGES
    try:  # an unknown metric is a KeyError, a value that is no number a TypeError
        for metric, value in values.items():
            bounds = ranges[metric]
            if not bounds[0] <= value <= bounds[1] or type(value) is bool:
                return None
    except (KeyError, TypeError):
        return None
    return values


def decode_telemetry(payload: bytes, limits: Limits) -> TelemetryMessage:
    """Decode a telemetry payload; raise `ContractError` only when nothing of it is usable."""
    _check_size(payload, limits)
    whole = _decode_whole(payload, limits)
    return TelemetryMessage(whole) if whole is not None else _decode_by_entry(payload, limits)


def _decode_by_entry(payload: bytes, limits: Limits) -> TelemetryMessage:
    """The way of a message with something wrong in it: parsed by orjson, then checked entry by entry."""
    doc = _load(payload, limits)
    entries = doc.get("readings")
    if not isinstance(entries, list) or not entries:
        raise MalformedPayload("'readings' must be a non-empty list of {equipment, ts, values}")
    rejected = _Rejections()
    decoded = _decode_each(entries, doc.get("ts"), limits, rejected)
    extra = {k: v for k, v in doc.items() if k not in _TELEMETRY_FIELDS}
    return TelemetryMessage(decoded, tuple(rejected.kept), extra, rejected.counts)


# A gateway's batch as it should be, as msgspec types derived from the catalogue: every metric known
# (an unknown one fails), a number (not a boolean) in its physical range, no field beside "ts" and
# "readings". msgspec checks all of it in C while it parses; the rest (codes, one instant) is a few
# C-level passes (python -m bench.ingest.decoding; docs/decisions/typed-decoding.md).
_WireValues = msgspec.defstruct(
    "_WireValues",
    [(m.key, Annotated[float, msgspec.Meta(ge=m.lo, le=m.hi)] | UnsetType, UNSET)
     for m in METRICS_BY_KEY.values()],
    forbid_unknown_fields=True, gc=False)
_Instant = int | str | None | UnsetType
_WireEntry = msgspec.defstruct("_WireEntry", [("equipment", str), ("values", _WireValues),
                                              ("ts", _Instant, UNSET)], gc=False)
# list[_WireEntry], spelt so that a type checker does not read a class built at run time as a static type.
_WireBatch = msgspec.defstruct("_WireBatch", [("readings", GenericAlias(list, _WireEntry)), ("ts", _Instant, UNSET)],
                               forbid_unknown_fields=True, gc=False)
_WHOLE: msgspec.json.Decoder[Any] = msgspec.json.Decoder(_WireBatch)


class _WireEntryView(Protocol):
    """What `_decode_whole` reads of a `_WireEntry` (a class built at run time, unknown to a type checker)."""

    equipment: str
    values: msgspec.Struct
    ts: _Instant


class _WireBatchView(Protocol):
    """What `_decode_whole` reads of a `_WireBatch`."""

    readings: list[_WireEntryView]
    ts: _Instant

_CODE_OF = attrgetter("equipment")
_VALUES_OF = attrgetter("values")
_TS_OF = attrgetter("ts")
_NEW_TUPLE = tuple.__new__
_CODE_OF_ENTRY = itemgetter(0)  # Entry.equipment, read in C


def _decode_whole(payload: bytes, limits: Limits) -> tuple[Entry, ...] | None:
    """Every entry at once when all of them keep the contract and share one instant; None as soon as
    anything differs, and `_decode_each` says entry by entry what."""
    try:
        batch: _WireBatchView = _WHOLE.decode(payload)
    except (msgspec.DecodeError, RecursionError):  # not JSON, not a batch as it should be, or an unknown
        return None                                # field nested too deep for msgspec: orjson says which
    entries = batch.readings
    codes = list(map(_CODE_OF, entries))  # none at all fails the test of the codes: "".isalnum() is False
    joined = "".join(codes)
    lengths = list(map(len, codes))
    instants = set(map(_TS_OF, entries))
    if (not (joined.isascii() and joined.isalnum()) or min(lengths) < _CODE_MIN or max(lengths) > _CODE_MAX
            or len(instants) != 1):
        return None
    instant = instants.pop()
    try:  # none on the entries nor on the message is a BadTimestamp too
        ts_ms = parse_timestamp(batch.ts if instant is UNSET else instant, limits)
    except ContractError:
        return None
    values = msgspec.to_builtins(list(map(_VALUES_OF, entries)))  # only the metrics given, as floats
    if not all(values):
        return None
    # Entry(code, ts_ms, values), built as the named tuple's own __new__ builds it, without a Python call.
    return tuple(map(_NEW_TUPLE, repeat(Entry), zip(codes, repeat(ts_ms), values)))


class _Rejections:
    """A message's rejections: every one counted by reason, the first `MAX_REJECTED_KEPT` kept."""

    __slots__ = ("counts", "kept")

    def __init__(self) -> None:
        self.kept: list[Rejected] = []
        self.counts: dict[str, int] = {}

    def add(self, reason: str, detail: str, equipment: str | None, entry: Any) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if len(self.kept) < MAX_REJECTED_KEPT:
            self.kept.append(Rejected(reason, detail, equipment, entry))


def _count_what_is_no_entry(entries: list[Any], rejected: _Rejections) -> list[Any]:
    """Count as malformed, in a few C-level passes, the entries that are no object with a valid code; the rest.

    A message of 130,000 zeros is counted this way far faster than entry by entry (docs/performance.md).
    """
    dicts = list(compress(entries, map(is_, map(type, entries), repeat(dict))))
    codes = list(map(_GET_EQUIPMENT, dicts))
    kept = list(compress(dicts, map(_is_code, codes)))
    malformed = len(entries) - len(kept)
    if malformed:
        rejected.counts[MalformedPayload.reason] = rejected.counts.get(MalformedPayload.reason, 0) + malformed
    return kept


def _is_code(value: Any) -> bool:
    return isinstance(value, str) and _CODE_MIN <= len(value) <= _CODE_MAX and value.isascii() and value.isalnum()


_GET_EQUIPMENT = methodcaller("get", "equipment")


def _decode_each(entries: list[Any], default_ts: Any, limits: Limits, rejected: _Rejections, *,
                 flood_counted: bool = False) -> tuple[Entry, ...]:
    """Entry by entry: the valid ones; each bad one (or bad reading of one) added to ``rejected`` with its reason.

    A rejection names its equipment only when the code is a valid one: anything else (U+0000, a
    megabyte of text) is left in the entry, never handed on as a code to look up or store.
    """
    decoded: list[Entry] = []
    # A message's entries usually share one instant: parse each distinct timestamp once.
    last_ts_value: Any = _MISSING
    last_ts_ms = 0
    for index, entry in enumerate(entries):
        if not flood_counted and len(rejected.kept) >= MAX_REJECTED_KEPT:  # enough kept: the rest counted in C
            entries = _count_what_is_no_entry(entries[index:], rejected)
            break
        code = None
        try:
            if not isinstance(entry, dict):
                raise MalformedPayload(f"reading entry is {type(entry).__name__}; expected an object")
            code = _equipment_code(entry.get("equipment"))
            ts_value = entry.get("ts", default_ts)
            if ts_value is None:
                raise BadTimestamp("no 'ts' on the entry nor on the message")
            if type(ts_value) is not type(last_ts_value) or ts_value != last_ts_value:
                last_ts_ms = parse_timestamp(ts_value, limits)
                last_ts_value = ts_value
            ts_ms = last_ts_ms
            values = entry.get("values")
            if not isinstance(values, dict) or not values:
                raise MalformedPayload("'values' must be a non-empty object of metric → number")
        except ContractError as exc:
            rejected.add(exc.reason, exc.detail, code, entry)
            continue
        valid = _valid_values(values)
        if valid is None:
            valid = _valid_values_slowly(code, ts_value, values, rejected)
        if valid:
            decoded.append(Entry(code, ts_ms, valid))
    else:
        return tuple(decoded)
    # Past the cap: the entries left that may still be valid, decoded as above (their rejections counted only).
    return (*decoded, *_decode_each(entries, default_ts, limits, rejected, flood_counted=True))


def _valid_values_slowly(code: str, ts_value: Any, values: dict[str, Any],
                         rejected: _Rejections) -> dict[str, float]:
    """The valid part of ``values``; each bad metric rejected alone, with its reason, in order."""
    valid: dict[str, float] = {}
    for metric, raw in values.items():
        if metric not in METRICS_BY_KEY:
            rejected.add(UnknownMetric.reason, f"unknown metric {metric!r}; see the catalogue in "
                         "docs/mqtt-contract.md", code, {"equipment": code, "ts": ts_value, "values": {metric: raw}})
            continue
        try:
            valid[metric] = _number(metric, raw)
        except ContractError as exc:
            rejected.add(exc.reason, exc.detail, code, {"equipment": code, "ts": ts_value, "values": {metric: raw}})
    return valid


def decode_event(payload: bytes, limits: Limits) -> Event:
    """Decode an event payload or raise `ContractError`."""
    doc = _load(payload, limits)
    code = _equipment_code(doc.get("equipment"))
    event_type = doc.get("type")
    if not isinstance(event_type, str) or event_type not in EVENTS_BY_TYPE:
        raise UnknownEventType(f"event type {event_type!r} is not in the catalogue; see docs/mqtt-contract.md")
    if "ts" not in doc:
        raise BadTimestamp("event has no 'ts'")
    active = doc.get("active", True)
    details = doc.get("details", {})
    if not isinstance(active, bool) or not isinstance(details, dict):
        raise MalformedPayload("'active' must be a boolean and 'details' an object")
    # Both are stored as jsonb: made storable here (U+0000 escaped, nesting cut), the event kept.
    details = storable_json(details)
    extra = storable_json({k: v for k, v in doc.items() if k not in _EVENT_FIELDS})
    return Event(code, event_type, parse_timestamp(doc["ts"], limits), active, details, extra)


def decode_status(payload: bytes, limits: Limits) -> GatewayStatus:
    """Decode a gateway status payload or raise `ContractError`."""
    doc = _load(payload, limits)
    try:
        state = GatewayState(doc.get("state", ""))  # a missing state fails as an unknown one
    except ValueError:
        raise MalformedPayload(f"status 'state' must be 'online' or 'offline', got {doc.get('state')!r}") from None
    ts = doc.get("ts")
    ts_ms = parse_timestamp(ts, limits) if ts is not None else None
    return GatewayStatus(state, ts_ms, {k: v for k, v in doc.items() if k not in ("state", "ts")})


def encode_telemetry(readings: dict[str, dict[str, float]], ts_ms: int) -> bytes:
    """A telemetry payload: equipment code → {metric: value}, all at ``ts_ms``."""
    return orjson.dumps({"ts": ts_ms, "readings": [{"equipment": code, "values": values}
                                                    for code, values in readings.items()]})


def encode_event(event: Event) -> bytes:
    """An event payload."""
    return orjson.dumps({"equipment": event.equipment, "ts": event.ts_ms, "type": event.type,
                         "active": event.active, "details": event.details, **event.extra})


def encode_status(state: GatewayState | str, ts_ms: int | None = None) -> bytes:
    """A status payload; the last will uses ``encode_status("offline")`` with no time."""
    doc: dict[str, Any] = {"state": str(state)}
    if ts_ms is not None:
        doc["ts"] = ts_ms
    return orjson.dumps(doc)


Body = TelemetryMessage | Event | GatewayStatus


def decode_body(kind: Kind, payload: bytes, limits: Limits) -> Body | None:
    """Decode a payload as its topic's ``kind`` says, or raise `ContractError`.

    None for an empty status payload: a retained status cleared. Any other failure of a decoder on
    some input (a bug of ours or of a parser) is that input's fault too: `MalformedPayload`, never
    an exception that would end the process reading it.
    """
    try:
        if kind is Kind.TELEMETRY:
            return decode_telemetry(payload, limits)
        if kind is Kind.EVENT:
            return decode_event(payload, limits)
        return decode_status(payload, limits) if payload else None
    except ContractError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError, KeyError, AttributeError) as exc:
        raise MalformedPayload(f"payload could not be decoded ({type(exc).__name__}); check it is a {kind} "
                               "message as docs/mqtt-contract.md describes") from None


def equipment_named(body: Body | None) -> set[str]:
    """The equipment codes a decoded message reports for: its valid telemetry entries, or its event."""
    if isinstance(body, TelemetryMessage):
        return set(map(_CODE_OF_ENTRY, body.entries))
    if isinstance(body, Event):
        return {body.equipment}
    return set()
