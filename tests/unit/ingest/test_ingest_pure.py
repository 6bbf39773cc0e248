"""Pure parts of the ingest: chart resolution, dead-letter re-wrapping, the in-flight window's bounds."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from api.telemetry.resolution import Resolution, choose_resolution
from ingest.deadletters import as_message
from safewatch.mqtt import Delivery, InflightWindow

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(("span", "expected"), [
    (timedelta(minutes=5), Resolution.RAW), (timedelta(hours=1), Resolution.RAW),
    (timedelta(hours=1, seconds=1), Resolution.MINUTE), (timedelta(days=1), Resolution.MINUTE),
    (timedelta(days=7), Resolution.HOUR), (timedelta(days=400), Resolution.HOUR)])
def test_resolution_follows_the_span(span, expected):
    assert choose_resolution(T0 - span, T0, T0) is expected


@pytest.mark.parametrize(("age", "span", "expected"), [
    (timedelta(days=400, seconds=1), timedelta(minutes=5), Resolution.HOUR),
    (timedelta(days=401), timedelta(hours=3), Resolution.HOUR),
    (timedelta(days=400, seconds=-1), timedelta(minutes=5), Resolution.RAW),
    (timedelta(days=400, seconds=-1), timedelta(hours=3), Resolution.MINUTE)])
def test_a_span_starting_past_the_raw_and_minute_retention_reads_the_hours(age, span, expected):
    assert choose_resolution(T0 - age, T0 - age + span, T0) is expected


@pytest.mark.parametrize(("start", "end", "message"), [
    (T0, T0, "must be before"), (T0 - timedelta(days=401), T0, "400-day limit")])
def test_bad_spans_say_why(start, end, message):
    with pytest.raises(ValueError, match=message):
        choose_resolution(start, end, T0)


def test_an_entry_dead_letter_is_wrapped_back_into_a_message():
    entry = {"equipment": "311015000202400001", "ts": 1, "values": {"speed": 1}}
    msg = as_message("se/v1/150100/gw/telemetry", orjson.dumps(entry))
    assert orjson.loads(msg.payload) == {"readings": [entry]}
    whole = orjson.dumps({"ts": 1, "readings": [entry]})
    assert as_message("se/v1/150100/gw/telemetry", whole).payload == whole
    assert as_message("se/v1/150100/gw/telemetry", b"{not json").payload == b"{not json"
    assert as_message("se/v1/150100/gw/event", orjson.dumps(entry)).payload == orjson.dumps(entry)


def _d(mid: int, size: int) -> Delivery:
    return Delivery("t", b"x" * size, mid, 1, 1, 0.0)


def test_window_blocks_at_the_byte_bound_until_acknowledged():
    window = InflightWindow(max_messages=100, max_bytes=1000)
    for mid in range(3):
        window.put(_d(mid, 300))
    assert window.unacked() == (3, 900)
    blocked = threading.Thread(target=window.put, args=(_d(9, 300),), daemon=True)
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive(), "a put over the byte bound must wait"
    batch = window.take(10, 0.01)
    assert [d.mid for d in batch] == [0, 1, 2]
    assert blocked.is_alive(), "taking a batch does not free budget: only the ack after commit does"
    window.release(batch[:1])
    blocked.join(5)
    assert not blocked.is_alive()
    assert window.unacked() == (3, 900) and window.queued() == 1


def test_window_bounds_the_count_and_admits_a_lone_oversized_message():
    window = InflightWindow(max_messages=2, max_bytes=100)
    window.put(_d(1, 10_000))  # bigger than the byte bound: still admitted when nothing else is held
    assert window.unacked() == (1, 10_000)
    window.release(window.take(5, 0.01))
    window.put(_d(2, 1))
    window.put(_d(3, 1))
    blocked = threading.Thread(target=window.put, args=(_d(4, 1),), daemon=True)
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive(), "a third message over max_messages must wait"
    window.release(window.take(1, 0.01))
    blocked.join(5)
    assert not blocked.is_alive()


def test_a_batch_stops_at_its_byte_budget():
    window = InflightWindow(max_messages=100, max_bytes=10_000)
    for mid in range(5):
        window.put(_d(mid, 1000))
    assert [d.mid for d in window.take(100, 0.01, max_bytes=2500)] == [0, 1, 2]  # stops once 2,500 are in
    assert [d.mid for d in window.take(100, 0.01)] == [3, 4]
