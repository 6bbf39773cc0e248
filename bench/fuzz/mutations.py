"""A structure-aware fuzzer of device messages (pure, seeded): valid messages, and mutations of them.

Mutations work on the parsed message where they can (a value of a known field replaced, a string
spoiled with U+0000, control characters or a lone surrogate, an array blown up, nesting deepened)
and on its bytes where JSON itself is the target (NaN/Infinity, duplicate keys, oversized numbers,
truncation, invalid UTF-8). `check` states what must hold of whatever the ingest makes of a batch.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from ingest.batching import Batch, Bound, RawMessage, assemble, dead_letter_key
from ingest.writer import dead_letter_params
from safewatch.contract import (
    EVENT_TYPES,
    MAX_REJECTED_KEPT,
    Category,
    Kind,
    Limits,
    build_topic,
    metrics_of,
)

_STRANGE_TEXT = ["\x00", "AB\x00CD", "\x01\x1f\x7f", "\u2028", "\ufeff", "\U0001f525", "'; DROP TABLE x;--",
                 "a" * 300, "\\u0000", "%00", "\t\n\r"]
_STRANGE_VALUES: list[Any] = [None, True, False, 0, -1, 2**63, -(2**63) - 1, 10**30, 1e308, -1e308, 5e-324, "",
                              "1.0", [], {}, [1, 2], {"a": 1}, 1.5, -0.0]
# Byte-level spellings orjson's writer cannot produce.
_RAW_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1" * 400, b"0" * 50 + b"1", b"1e-400",
                b"18446744073709551616", b"-9223372036854775809", b"01", b"1.", b".5", b"+1"]


_NUMBER = re.compile(rb"-?[0-9][0-9.eE+-]*")
_SPECS = {str(c): metrics_of(c) for c in Category}


class Fleet:
    """Who may publish what: equipment codes by gateway, with their categories."""

    def __init__(self, equipment: Sequence[Mapping[str, Any]], gateways: Sequence[Mapping[str, Any]]) -> None:
        self.league = {g["id"]: g["league_code"] for g in gateways}
        self.by_gateway: dict[str, list[tuple[str, str]]] = {}
        for e in equipment:
            if e["gateway_id"] in self.league:
                self.by_gateway.setdefault(e["gateway_id"], []).append((e["code"], e["category"]))
        self.gateways = sorted(self.by_gateway)
        self.registry = {e["code"]: Bound(i, e["gateway_id"], e["category"]) for i, e in enumerate(equipment, 1)}


def valid_message(rng: random.Random, fleet: Fleet, now_ms: int) -> RawMessage:
    """A message that keeps the contract: mostly telemetry, some events and statuses."""
    gw = rng.choice(fleet.gateways)
    league = fleet.league[gw]
    ts = now_ms - rng.randrange(0, 3_600_000)
    roll = rng.random()
    if roll < 0.85:
        entries = []
        for code, category in rng.sample(fleet.by_gateway[gw], min(len(fleet.by_gateway[gw]), rng.randint(1, 8))):
            specs = _SPECS[category]
            chosen = rng.sample(specs, min(len(specs), rng.randint(1, 4)))
            entries.append({"equipment": code, "values": {m.key: round(rng.uniform(m.lo, m.hi), 3) for m in chosen}})
        return RawMessage(build_topic(league, gw, Kind.TELEMETRY), orjson.dumps({"ts": ts, "readings": entries}))
    if roll < 0.95:
        code, _ = rng.choice(fleet.by_gateway[gw])
        doc = {"equipment": code, "ts": ts, "type": rng.choice(EVENT_TYPES).type, "active": rng.random() < 0.5,
               "details": {"floor": rng.randint(1, 30), "note": "ok"}}
        return RawMessage(build_topic(league, gw, Kind.EVENT), orjson.dumps(doc))
    state = rng.choice(["online", "offline"])
    return RawMessage(build_topic(league, gw, Kind.STATUS), orjson.dumps({"state": state, "ts": ts}))


def _strings(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], str]]:
    """Every string position of ``doc``: ("key", k) for a key, ("value", k) for a value."""
    out: list[tuple[tuple[Any, ...], str]] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append(((*path, k), "key"))
            out.extend(_strings(v, (*path, k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.extend(_strings(v, (*path, i)))
    elif isinstance(doc, str):
        out.append((path, "value"))
    return out


def _places(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every value position of ``doc`` (not the root)."""
    out: list[tuple[Any, ...]] = []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        out.append((*path, k))
        out.extend(_places(v, (*path, k)))
    return out


def _set(doc: Any, path: tuple[Any, ...], fn: Callable[[Any], Any], *, key: bool = False) -> None:
    if not path:  # the document itself is a string: left as it is
        return
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if key:
        parent[fn(last)] = parent.pop(last)
    else:
        parent[last] = fn(parent[last])


def _spoil_text(rng: random.Random, text: str, strange: str | None = None) -> str:
    strange = strange if strange is not None else rng.choice(_STRANGE_TEXT)
    at = rng.randint(0, len(text))
    return text[:at] + strange + text[at:]


def _nest(rng: random.Random, value: Any) -> Any:
    for _ in range(rng.choice([2, 40, 300, 1000, 1100])):
        value = [value] if rng.random() < 0.5 else {"n": value}
    return value


def mutate(rng: random.Random, message: RawMessage, *, text: str | None = None,
           max_payload_bytes: int = 256 * 1024, heavy: float = 1.0) -> RawMessage:
    """``message`` spoiled in one to three ways (``text``: a string to put in, else one of the strange ones).

    ``heavy`` scales how often a message is made large (a huge array, a payload over the limit): below 1
    where the run carries every byte through a broker and into the dead letters, not only a decoder."""
    topic, payload = message
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        kind = rng.randrange(12)
        if kind == 2 and rng.random() < 1 - 0.25 * heavy:  # huge arrays cost the most to make and read: rarer
            kind = rng.randrange(3, 12)
        try:
            # A message grown large is spoiled in its bytes: walking it here would cost more than reading it.
            doc = orjson.loads(payload) if len(payload) < 16_384 else None
            if kind < 7 and doc is not None:
                payload = _mutate_doc(rng, doc, kind, text, max_payload_bytes)
                continue
        except (orjson.JSONDecodeError, RecursionError):  # not JSON, or too deep to walk here: spoil the bytes
            pass
        if kind == 7:  # NaN, Infinity, huge or odd number spellings in place of a number
            numbers = [m.span() for m in _NUMBER.finditer(payload, 0, 16_384)]
            if numbers:
                at, end = rng.choice(numbers)
                payload = payload[:at] + rng.choice(_RAW_NUMBERS) + payload[end:]
        elif kind == 8 and payload.startswith(b"{"):  # a duplicate key, first or last of equals winning
            dup = rng.choice([b'"ts":"x",', b'"ts":1,', b'"readings":[],', b'"equipment":"AB\\u0000C",',
                              b'"state":"offline",', b'"type":null,'])
            payload = b"{" + dup + payload[1:] if rng.random() < 0.5 else payload[:-1] + b"," + dup[:-1] + b"}"
        elif kind == 9:  # truncated
            payload = payload[: rng.randrange(0, max(1, len(payload)))]
        elif kind == 10:  # a lone surrogate, or bytes that are not UTF-8
            spell = rng.choice([b"\\ud800", b"\\udfff", b"\\ud83d", b"\xff", b"\xc3(", b"\xed\xa0\x80"])
            quote = payload.find(b'"', rng.randrange(0, max(1, len(payload))))
            if quote >= 0:
                payload = payload[: quote + 1] + spell + payload[quote + 1:]
        else:  # another kind's topic, or a payload over the limit
            if rng.random() < 1 - 0.5 * heavy:
                parts = topic.split("/")
                parts[4] = rng.choice(["telemetry", "event", "status"])
                topic = "/".join(parts)
            else:
                payload = payload + b" " * (max_payload_bytes + 1 - len(payload))
    return RawMessage(topic, payload)


def _mutate_doc(rng: random.Random, doc: Any, kind: int, text: str | None, max_payload_bytes: int) -> bytes:
    """One structure-aware spoiling of a parsed message; its JSON."""
    if kind == 0 and (spots := _strings(doc)):  # U+0000, control characters, odd text
        path, what = rng.choice(spots)
        _set(doc, path, lambda s: _spoil_text(rng, s, text) if isinstance(s, str) else s,
             key=(what == "key"))
    elif kind == 1 and (spots := _places(doc)):  # a wrong type, or an odd number
        _set(doc, rng.choice(spots), lambda _: rng.choice(_STRANGE_VALUES))
    elif kind == 2 and isinstance(doc, dict) and isinstance(doc.get("readings"), list):  # a huge array
        junk: object = rng.choice([0, {}, "x", [], None, {"equipment": "ZZZZ0001", "values": {"speed": 1}}])
        per = len(orjson.dumps(junk)) + 1
        doc["readings"] = doc["readings"] + [junk] * rng.randint(1, (max_payload_bytes - 200) // per)
    elif kind == 3 and (spots := _places(doc)):  # nesting, up to past orjson's limit (1024)
        _set(doc, rng.choice(spots), lambda v: _nest(rng, v))
    elif kind == 4 and isinstance(doc, dict):  # an extra field, odd
        doc[_spoil_text(rng, "x", text) if rng.random() < 0.5 else "firmware"] = rng.choice(
            [*_STRANGE_VALUES, *_STRANGE_TEXT])
    elif kind == 5 and isinstance(doc, dict) and doc:  # a field gone
        doc.pop(rng.choice(list(doc)))
    elif kind == 6:  # the whole document of another shape
        doc = rng.choice([[], [doc], "x", 1, None, {"readings": []}, {"state": "online"}])
    try:
        return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # nested past what orjson writes: by hand
        return _dumps_deep(doc)


def _dumps_deep(doc: Any) -> bytes:
    """JSON of ``doc`` however deep (orjson writes 254 levels at most): iterative, by hand."""
    out: list[bytes] = []
    stack: list[Any] = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, bytes):
            out.append(item)
        elif isinstance(item, list):
            stack.append(b"]")
            for i, v in enumerate(reversed(item)):
                stack.append(v)
                if i < len(item) - 1:
                    stack.append(b",")
            stack.append(b"[")
        elif isinstance(item, dict):
            stack.append(b"}")
            pairs = list(item.items())
            for i, (k, v) in enumerate(reversed(pairs)):
                stack.append(v)
                stack.append(orjson.dumps(str(k)) + b":")
                if i < len(pairs) - 1:
                    stack.append(b",")
            stack.append(b"{")
        elif isinstance(item, int) and not isinstance(item, bool):
            out.append(str(item).encode())  # past 64 bits too
        else:
            out.append(orjson.dumps(item))
    return b"".join(out)


def stream(rng: random.Random, fleet: Fleet, now_ms: int, n: int, *, bad_share: float = 0.5,
           max_payload_bytes: int = 256 * 1024) -> list[RawMessage]:
    """``n`` messages, about ``bad_share`` of them mutated, in a random order."""
    return [mutate(rng, m, max_payload_bytes=max_payload_bytes) if rng.random() < bad_share else m
            for m in (valid_message(rng, fleet, now_ms) for _ in range(n))]


def check(messages: Sequence[RawMessage], batch: Batch) -> None:
    """What must hold of any batch the ingest assembles, whatever its messages held (AssertionError if not)."""
    assert len(batch.dead_letters) <= len(messages), "more dead letters than messages"
    for column in dead_letter_params(batch.dead_letters)[:5]:
        for text in column:
            assert text is None or ("\x00" not in text and text.encode("utf-8")), "unstorable dead-letter text"
    for e in batch.events:
        orjson.dumps(e.details)  # raises past 254 levels
        assert not _holds_nul(e.details), "U+0000 in an event's details"
        orjson.dumps(e.details)  # raises past 254 levels
    for s in batch.statuses:
        assert s.gateway_id.isascii() and "\x00" not in s.gateway_id


def _holds_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            if any("\x00" in k for k in item):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def decode_and_check(messages: Sequence[RawMessage], registry: Mapping[str, Bound], limits: Limits) -> Batch:
    """`assemble` a batch as the ingest does, and `check` it; the rejected kept per message stay bounded."""
    batch = assemble(messages, registry, limits)
    check(messages, batch)
    assert MAX_REJECTED_KEPT <= 256
    return batch


def expected(messages: Sequence[RawMessage], fleet: Fleet, now_ms: int
             ) -> tuple[set[tuple[int, int, int]], set[tuple[int, str, int, bool]], set[bytes]]:
    """What the ingest must store of ``messages``, each judged alone by the same pure code: reading keys
    (equipment, metric, ts), event keys, and the keys of the messages to dead-letter."""
    limits = Limits(now_ms)
    readings: set[tuple[int, int, int]] = set()
    events: set[tuple[int, str, int, bool]] = set()
    keys: set[bytes] = set()
    for m in messages:
        batch = assemble([m], fleet.registry, limits)
        readings.update((r.equipment_id, r.metric_id, r.ts_ms) for r in batch.readings)
        events.update((e.equipment_id, e.type, e.ts_ms, e.active) for e in batch.events)
        if batch.dead_letters:
            keys.add(dead_letter_key(m.topic, m.payload))
    return readings, events, keys
