"""Issue 21: whatever a gateway sends, the decoders answer with a value or a ContractError, and what they
hand on can be stored; a hostile message cannot make them keep more than a bound."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safewatch.contract import (
    MAX_JSON_DEPTH,
    MAX_REJECTED_KEPT,
    ContractError,
    Event,
    Kind,
    Limits,
    MalformedPayload,
    TelemetryMessage,
    decode_body,
    decode_event,
    decode_telemetry,
    storable_json,
    storable_text,
)

NOW = 1_795_593_600_000
LIMITS = Limits(NOW)
CODE = "311015456201900002"


def test_a_code_holding_nul_is_rejected_and_never_handed_on():
    payload = b'{"ts":%d,"readings":[{"equipment":"AB\\u0000CD","values":{"speed":1}},' \
              b'{"equipment":"%s","values":{"speed":1}}]}' % (NOW, CODE.encode())
    message = decode_telemetry(payload, LIMITS)
    assert [e.equipment for e in message.entries] == [CODE]
    assert [(r.reason, r.equipment) for r in message.rejected] == [("malformed_payload", None)]


@pytest.mark.parametrize(("doc", "stored"), [
    ({"details": {"floor": "7\x00"}}, ({"floor": "7\\u0000"}, {})),
    ({"details": {"a\x00": 1}}, ({"a\\u0000": 1}, {})),
    ({"details": {"a": ["x", {"b": "\x00"}]}}, ({"a": ["x", {"b": "\\u0000"}]}, {})),
    ({"note\x00": 1}, ({}, {"note\\u0000": 1})),
    ({"note": "\x00"}, ({}, {"note": "\\u0000"})),
])
def test_an_event_holding_nul_where_it_is_stored_as_json_is_kept_with_nul_escaped(doc, stored):
    # The event is what matters (a trapped passenger): kept, its free text made storable.
    payload = orjson.dumps({"equipment": CODE, "ts": NOW, "type": "passenger_trapped", **doc})
    event = decode_event(payload, LIMITS)
    assert (event.type, event.details, event.extra) == ("passenger_trapped", *stored)
    assert b"\\u0000" not in orjson.dumps({**event.details, **event.extra}).replace(b"\\\\", b"")


def test_details_nested_deeper_than_the_bound_are_cut():
    def nested(depth: int) -> bytes:
        return b'{"equipment":"%s","ts":%d,"type":"passenger_trapped","details":%s1%s}' % (
            CODE.encode(), NOW, b'{"a":' * depth, b"}" * depth)

    def depth_of(value: object) -> int:
        return 1 + depth_of(value["a"]) if isinstance(value, dict) else 0

    assert depth_of(decode_event(nested(MAX_JSON_DEPTH), LIMITS).details) == MAX_JSON_DEPTH
    for depth in (MAX_JSON_DEPTH + 1, 300, 1000):  # past what orjson writes back (254): it raised at the write
        details = decode_event(nested(depth), LIMITS).details
        assert depth_of(details) == MAX_JSON_DEPTH
        orjson.dumps(details)


def test_an_unknown_field_nested_past_msgspecs_limit_is_no_crash():
    deep = b"[" * 1000 + b"]" * 1000
    payload = b'{"ts":%d,"readings":[{"equipment":"%s","values":{"speed":1},"x":%s}]}' % (NOW, CODE.encode(), deep)
    assert [e.equipment for e in decode_telemetry(payload, LIMITS).entries] == [CODE]  # RecursionError before
    with pytest.raises(MalformedPayload):  # past orjson's own limit (1024): not JSON we read
        decode_telemetry(payload.replace(deep, b"[" * 1100 + b"]" * 1100), LIMITS)


def test_a_flood_of_bad_entries_keeps_a_bounded_few_and_counts_them_all():
    payload = b'{"ts":%d,"readings":[%s]}' % (NOW, b",".join([b"0"] * 130_000))
    message = decode_telemetry(payload, LIMITS)
    assert len(message.rejected) == MAX_REJECTED_KEPT
    assert message.rejected_counts == {"malformed_payload": 130_000} and message.rejected_total == 130_000


def test_storable_text_escapes_what_postgresql_refuses():
    assert storable_text("AB\x00CD") == "AB\\u0000CD"
    assert storable_text("x\ud800y").encode("utf-8") == b"x\\ud800y"
    assert len(storable_text("a" * 10_000, 100)) == 100


_JSON_ATOMS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                        st.text(alphabet=st.characters(codec="utf-8"), max_size=8))
_JSON = st.recursive(_JSON_ATOMS, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=4), inner, max_size=4), max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(list(Kind)), doc=st.dictionaries(
    st.sampled_from(["ts", "readings", "equipment", "type", "active", "details", "state", "values", "x\x00"]),
    _JSON, max_size=6), code=st.text(max_size=6), raw=st.binary(max_size=64))
def test_any_document_decodes_or_is_a_contract_error_and_what_is_kept_is_storable(kind, doc, code, raw):
    doc.setdefault("readings", [{"equipment": code, "values": {"speed": 1}}])
    whole = json.dumps(doc).encode()  # the standard library's: integers past 64 bits too
    for payload in (whole, raw, whole[:-3] + raw):
        try:
            body = decode_body(kind, payload, LIMITS)
        except ContractError as exc:
            assert exc.reason and isinstance(exc.detail, str)
            continue
        if isinstance(body, TelemetryMessage):
            for r in body.rejected:
                assert r.equipment is None or (r.equipment.isascii() and r.equipment.isalnum())
        elif isinstance(body, Event):
            assert storable_json(body.details) is body.details and storable_json(body.extra) is body.extra
