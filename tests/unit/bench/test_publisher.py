"""The bench publisher's laid-out payloads and packets are the plain ones, byte for byte."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from bench.ingest.publisher import _slot_parts, entry, payload, publish_packet
from safewatch.contract import Limits, decode_telemetry

EQUIPMENT = [(b"311015000202400001", "3000"), (b"110015000202400002", "1000"), (b"210015000202400003", "2000")]


@given(st.lists(st.sampled_from(EQUIPMENT), min_size=1, max_size=5), st.integers(0, 10**6),
       st.integers(1_764_000_000_000, 1_800_000_000_000))
def test_a_laid_out_payload_is_the_entries_joined(eqs: list[tuple[bytes, str]], i: int, ts: int):
    laid_out = payload(_slot_parts(eqs), b"%d" % ts, i)
    assert laid_out == b'{"readings":[' + b",".join(entry(code, cat, ts, i) for code, cat in eqs) + b"]}"
    decoded = decode_telemetry(laid_out, Limits(ts))  # every reading keeps the contract
    assert not decoded.rejected and len(decoded.readings) == 8 * len(eqs)
    assert [e.ts_ms for e in decoded.entries] == [ts] * len(eqs)


def test_entries_move_through_forty_variants():
    code, cat = EQUIPMENT[0]
    variants = {orjson.loads(entry(code, cat, 0, i))["values"]["floor"] for i in range(40)}
    assert len(variants) == 20 and entry(code, cat, 0, 3) == entry(code, cat, 0, 43)


def test_a_packet_is_length_prefixed_with_its_packet_id():
    packet = publish_packet(b"se/v1/t", b"x" * 200, 258)
    assert packet[:3] == b"\x32\xd3\x01"  # 211 bytes follow: 7-bit groups, least significant first
    assert packet[3:12] == b"\x00\x07se/v1/t" and packet[12:14] == b"\x01\x02" and packet[14:] == b"x" * 200
