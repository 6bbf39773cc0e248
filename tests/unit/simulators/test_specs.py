"""Command-line fault specifications and replay times (pure)."""

from __future__ import annotations

import pytest

from simulators.faults import Fault, parse_fault_spec
from simulators.replay import Point, parse_time, shift_offset


def test_fault_specs_parse_with_metric_and_magnitude_relative_to_the_start():
    assert parse_fault_spec("110015000202100042:feed_pump_failure:60:600", start_ms=1_000_000) == Fault(
        "110015000202100042", "feed_pump_failure", 1_060_000, 1_660_000)
    drift = parse_fault_spec("X1:sensor_drift:0:3600:drum_pressure:0.05", start_ms=0)
    assert (drift.metric, drift.magnitude) == ("drum_pressure", 0.05)
    skew = parse_fault_spec("gw-1:clock_skew:30:120:600000", start_ms=0, scope="gateway")
    assert (skew.scope, skew.magnitude) == ("gateway", 600000.0)


@pytest.mark.parametrize(("spec", "scope", "message"), [
    ("X1:melting:0:10", "equipment", "fault 'melting' is not one of"),
    ("X1:leak:ten:10", "equipment", "must be numbers of seconds"),
    ("X1:leak", "equipment", "is not CODE:KIND:START_S:DURATION_S"),
    ("X1:leak:10:-5", "equipment", "ends before it starts"),
    ("gw:leak:0:10", "gateway", "gateway fault 'leak' is not one of"),
])
def test_bad_fault_specs_say_what_is_wrong(spec, scope, message):
    with pytest.raises(ValueError, match=message):
        parse_fault_spec(spec, start_ms=0, scope=scope)


def test_replay_times_and_the_shift_that_never_reaches_the_future():
    assert parse_time("1700000000") == parse_time("1700000000000") == 1_700_000_000_000
    assert parse_time("2024-01-15 08:00:00") == parse_time("2024-01-15T00:00:00Z")  # naive = Beijing time
    points = [Point(0, {}), Point(50_000, {}), Point(100_000, {})]
    now = 10_000_000
    for speed in (0, 0.5, 1, 10):
        shift = shift_offset(points, now_ms=now, speed=speed)
        for p in points:  # each point is published at now + elapsed/speed; its time is never later than that
            published_at = now + ((p.ts_ms / speed) if speed else 0)
            assert p.ts_ms + shift <= published_at + 1
