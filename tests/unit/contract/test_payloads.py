"""The pure decoders: what is accepted, what is rejected and why, and encode/decode round trips."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from safewatch.contract import (
    METRICS,
    METRICS_BY_KEY,
    BadTimestamp,
    GatewayState,
    Limits,
    MalformedPayload,
    PayloadTooLarge,
    UnknownEventType,
    decode_event,
    decode_status,
    decode_telemetry,
    encode_status,
    encode_telemetry,
)

NOW = 1_795_593_600_000
LIMITS = Limits(NOW)
CODE = "110015123201800001"


def test_batched_readings_decode_with_per_entry_timestamps():
    payload = orjson.dumps({"ts": NOW, "readings": [
        {"equipment": CODE, "values": {"drum_pressure": 1.02, "burner_on": True}},
        {"equipment": "311015456201900002", "ts": "2026-11-25T16:00:01+08:00", "values": {"speed": 1.5}},
    ]})
    message = decode_telemetry(payload, LIMITS)
    assert [(r.equipment, r.metric, r.ts_ms, r.value) for r in message.readings] == [
        (CODE, "drum_pressure", NOW, 1.02), (CODE, "burner_on", NOW, 1.0),
        ("311015456201900002", "speed", NOW + 1000, 1.5)]
    assert message.rejected == ()
    assert type(message.entries[0].values["burner_on"]) is float  # a boolean is its number, not True


def test_booleans_are_numbers_and_strings_are_not():
    payload = orjson.dumps({"ts": NOW, "readings": [
        {"equipment": CODE, "values": {"burner_on": False, "drum_pressure": 1}},
        {"equipment": CODE, "ts": NOW - 1000, "values": {"burner_on": "on", "drum_pressure": None}}]})
    message = decode_telemetry(payload, LIMITS)
    assert [(e.ts_ms, e.values, [type(v) for v in e.values.values()]) for e in message.entries] == [
        (NOW, {"burner_on": 0.0, "drum_pressure": 1.0}, [float, float])]
    assert [(r.reason, r.entry["values"]) for r in message.rejected] == [
        ("malformed_payload", {"burner_on": "on"}), ("malformed_payload", {"drum_pressure": None})]


def test_bad_entries_are_rejected_alone_with_reasons():
    payload = orjson.dumps({"ts": NOW, "firmware": "2.1", "readings": [
        {"equipment": CODE, "values": {"drum_pressure": 1.0, "warp": 1, "drum_level": 9999, "steam_temp": "hot"}},
        {"equipment": CODE, "ts": NOW + 3_600_000, "values": {"drum_pressure": 1.0}},
        {"equipment": "bad code!", "values": {"drum_pressure": 1.0}},
        "not an object",
    ]})
    message = decode_telemetry(payload, LIMITS)
    assert [r.metric for r in message.readings] == ["drum_pressure"]
    assert [r.reason for r in message.rejected] == [
        "unknown_metric", "value_out_of_range", "malformed_payload", "bad_timestamp", "malformed_payload",
        "malformed_payload"]
    assert message.extra == {"firmware": "2.1"}


@pytest.mark.parametrize(("payload", "error"), [
    (b"{not json", MalformedPayload),
    (b"[1, 2]", MalformedPayload),
    (b'{"readings": []}', MalformedPayload),
    (b"x" * (LIMITS.max_payload_bytes + 1), PayloadTooLarge),
])
def test_unusable_messages_raise(payload, error):
    with pytest.raises(error):
        decode_telemetry(payload, LIMITS)


@pytest.mark.parametrize("ts", ["2026-11-25T08:00:00", "yesterday", 1_795_593_600, True, None, [1]])
def test_bad_timestamps(ts):
    payload = orjson.dumps({"ts": ts, "readings": [{"equipment": CODE, "values": {"drum_pressure": 1.0}}]})
    assert [r.reason for r in decode_telemetry(payload, LIMITS).rejected] == ["bad_timestamp"]


def test_seconds_instead_of_milliseconds_says_so():
    payload = orjson.dumps({"ts": NOW // 1000, "readings": [{"equipment": CODE, "values": {"drum_pressure": 1}}]})
    assert "send milliseconds" in decode_telemetry(payload, LIMITS).rejected[0].detail


def test_events_and_status():
    event = decode_event(orjson.dumps({"equipment": CODE, "ts": NOW, "type": "low_water_cutoff",
                                       "details": {"level": -95}, "site": "boiler house"}), LIMITS)
    assert (event.type, event.active, event.details, event.extra) == (
        "low_water_cutoff", True, {"level": -95}, {"site": "boiler house"})
    with pytest.raises(UnknownEventType):
        decode_event(orjson.dumps({"equipment": CODE, "ts": NOW, "type": "kaboom"}), LIMITS)
    with pytest.raises(BadTimestamp):
        decode_event(orjson.dumps({"equipment": CODE, "type": "overspeed"}), LIMITS)
    assert decode_status(encode_status(GatewayState.OFFLINE), LIMITS).state is GatewayState.OFFLINE
    with pytest.raises(MalformedPayload):
        decode_status(b'{"state": "sleepy"}', LIMITS)


_metric = st.sampled_from(METRICS)


@given(st.dictionaries(st.from_regex(r"[0-9A-Z]{18}", fullmatch=True),
                       st.lists(st.tuples(_metric, st.floats(0, 1)), min_size=1, max_size=5), min_size=1,
                       max_size=20),
       st.integers(NOW - 3_600_000, NOW))
def test_encode_decode_round_trip(entries, ts):
    readings = {code: {spec.key: spec.lo + frac * (spec.hi - spec.lo) for spec, frac in pairs}
                for code, pairs in entries.items()}
    message = decode_telemetry(encode_telemetry(readings, ts), LIMITS)
    assert message.rejected == ()
    assert {(r.equipment, r.metric): r.value for r in message.readings} == {
        (code, metric): value for code, values in readings.items() for metric, value in values.items()}
    assert {r.ts_ms for r in message.readings} == {ts}


# A gateway's batch as it should be, then perhaps spoiled: what the whole-message checks must catch.
_GONE = object()  # the field taken out of the entry
_SPOILS: dict[str, tuple[str, object]] = {
    "short code": ("equipment", "AB1"),
    "long code": ("equipment", "1" * 33),
    "code with a space": ("equipment", "110015 23201800001"),
    "code not ASCII": ("equipment", "11001512320180000à"),
    "code a number": ("equipment", 110015123201800001),
    "no code": ("equipment", _GONE),
    "a null code": ("equipment", None),
    "another instant": ("ts", NOW - 1000),
    "the same instant as a float": ("ts", float(NOW)),
    "the same instant as text": ("ts", "2026-11-25T16:00:00+08:00"),
    "a timestamp unhashable": ("ts", [NOW]),
    "a timestamp in the future": ("ts", NOW + 3_600_000),
    "a null timestamp": ("ts", None),
    "no timestamp": ("ts", _GONE),
    "the message's instant given again": ("ts", NOW),
    "an unknown field": ("firmware", "2.1"),
    "values empty": ("values", {}),
    "values a list": ("values", [1.0]),
    "no values": ("values", _GONE),
    "null values": ("values", None),
    "a boolean": ("values", {"drum_pressure": True}),
    "an integer": ("values", {"drum_pressure": 1}),
    "a string": ("values", {"drum_pressure": "1.0"}),
    "out of range": ("values", {"drum_pressure": 1e9}),
    "just out of range": ("values", {"drum_level": float(METRICS_BY_KEY["drum_level"].hi) + 1e-9}),
    "just below range": ("values", {"drum_level": float(METRICS_BY_KEY["drum_level"].lo) - 1e-9}),
    "at the edges of the range": ("values", {"drum_level": METRICS_BY_KEY["drum_level"].hi,
                                             "drum_pressure": METRICS_BY_KEY["drum_pressure"].lo}),
    "a huge integer": ("values", {"drum_pressure": 10**30}),
    "unknown metric": ("values", {"warp": 1.0}),
    "an unknown metric beside a known one": ("values", {"drum_pressure": 1.0, "warp": 1.0}),
    "the entry a string": ("entry", "not an object"),
    "the entry a list": ("entry", [CODE]),
}


def _gateway_batch(n: int, message_ts: object, spoils: list[tuple[int, str]]) -> dict[str, object]:
    """``n`` entries of one instant (on the message, or on each entry when ``message_ts`` is None), spoiled."""
    built: list[dict[str, object]] = [{"equipment": f"1100151232018{i:05d}",
                                       "values": {"drum_pressure": 1.0 + i / 10, "drum_level": -12.5}}
                                      for i in range(n)]
    if message_ts is None:
        for one in built:
            one["ts"] = NOW
    entries: list[object] = list(built)  # a spoil may replace an entry by anything
    for index, name in spoils:
        field, value = _SPOILS[name]
        entry = entries[index % n]
        if field == "entry":
            entries[index % n] = value
        elif isinstance(entry, dict) and value is _GONE:
            entry.pop(field, None)
        elif isinstance(entry, dict):
            entry[field] = value
    return {"readings": entries} if message_ts is None else {"ts": message_ts, "readings": entries}


def _assert_at_once_as_each(doc: dict[str, object]) -> bool:
    """`_decode_whole` takes a message only when it would decode with nothing rejected, and then gives
    what `_decode_each` gives; `decode_telemetry` gives that too. Returns whether it was taken at once."""
    from safewatch.contract.payloads import Entry, _decode_each, _decode_whole, _Rejections

    payload = json.dumps(doc).encode()  # the standard library's: orjson writes no integer past 64 bits
    readings = orjson.loads(payload)["readings"]
    rejections = _Rejections()
    expected = (_decode_each(readings, doc.get("ts"), LIMITS, rejections), tuple(rejections.kept))
    at_once = _decode_whole(payload, LIMITS)
    if at_once is not None:
        assert (at_once, ()) == expected
        assert all(type(e) is Entry for e in at_once)
    message = decode_telemetry(payload, LIMITS)
    assert (message.entries, message.rejected) == expected
    return at_once is not None


@pytest.mark.parametrize("message_ts", [NOW, None, "2026-11-25T08:00:00Z"])
def test_a_gateway_batch_as_it_should_be_decodes_at_once(message_ts):
    assert _assert_at_once_as_each(_gateway_batch(3, message_ts, []))


# Spoils that change nothing the decoder keeps, so that the message may still go at once.
_HARMLESS = {"an integer", "an unknown field", "at the edges of the range"}


@pytest.mark.parametrize("message_ts", [NOW, None])
@pytest.mark.parametrize("spoil", sorted(_SPOILS))
def test_one_spoiled_entry_decodes_as_entry_by_entry(spoil, message_ts):
    taken = _assert_at_once_as_each(_gateway_batch(3, message_ts, [(1, spoil)]))
    harmless = _HARMLESS | ({"no timestamp"} if message_ts is not None else {"the message's instant given again"})
    assert not taken or spoil in harmless


@given(n=st.integers(1, 12), message_ts=st.sampled_from([NOW, None, "2026-11-25T08:00:00Z"]),
       spoils=st.lists(st.tuples(st.integers(0, 11), st.sampled_from(sorted(_SPOILS))), max_size=3))
def test_any_spoiled_batch_decodes_as_entry_by_entry(n, message_ts, spoils):
    _assert_at_once_as_each(_gateway_batch(n, message_ts, spoils))


def test_a_field_beside_the_readings_is_kept():
    message = decode_telemetry(orjson.dumps({"ts": NOW, "firmware": "2.1", "readings": [
        {"equipment": CODE, "values": {"drum_pressure": 1.0}}]}), LIMITS)
    assert (len(message.entries), message.extra) == (1, {"firmware": "2.1"})


@pytest.mark.parametrize(("payload", "values"), [
    (b'{"ts":%d,"readings":[{"equipment":"%s","values":{"drum_pressure":1,"drum_pressure":2.5}}]}',
     {"drum_pressure": 2.5}),  # a key given twice: the last, as any JSON parser here keeps it
    (b'{"ts":%d,"readings":[{"equipment":"%s","values":{"drum_pressure":1}}]}  \n', {"drum_pressure": 1.0}),
])
def test_json_as_a_parser_reads_it(payload, values):
    message = decode_telemetry(payload % (NOW, CODE.encode()), LIMITS)
    assert (message.entries[0].values, message.rejected) == (values, ())


@pytest.mark.parametrize("payload", [
    b'{"ts":%d,"readings":[{"equipment":"%s","values":{"drum_pressure":1e400}}]}',
    b'{"ts":%d,"readings":[{"equipment":"%s","values":{"drum_pressure":NaN}}]}',
    b'{"ts":%d,"readings":[{"equipment":"%s","values":{"drum_pressure":1}}]} trailing',
])
def test_json_no_parser_reads_is_refused_whole(payload):
    with pytest.raises(MalformedPayload):
        decode_telemetry(payload % (NOW, CODE.encode()), LIMITS)
