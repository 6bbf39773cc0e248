"""Topics parse and build symmetrically; the contract's public names are pinned (as httpx does)."""

from __future__ import annotations

import pytest

import safewatch.contract as contract
from safewatch.contract import BadTopic, Kind, build_topic, device_filter, parse_topic, shared_filter


def test_topic_round_trip():
    topic = build_topic("150100", "gw-150102-001", Kind.TELEMETRY)
    assert topic == "se/v1/150100/gw-150102-001/telemetry"
    parsed = parse_topic(topic)
    assert (parsed.league, parsed.gateway_id, parsed.kind) == ("150100", "gw-150102-001", Kind.TELEMETRY)


@pytest.mark.parametrize("topic", ["se/v2/150100/gw/telemetry", "se/v1/1501/gw/telemetry", "se/v1/150100/gw/x",
                                   "se/v1/150100/g w/event", "se/v1/150100/gw/telemetry/extra", ""])
def test_bad_topics(topic):
    with pytest.raises(BadTopic):
        parse_topic(topic)


def test_filters():
    assert device_filter() == "se/v1/+/+/+"
    assert device_filter("150200", Kind.EVENT) == "se/v1/150200/+/event"
    assert shared_filter("ingest", device_filter()) == "$share/ingest/se/v1/+/+/+"


def test_public_names_are_pinned():
    assert sorted(contract.__all__) == sorted(name for name in dir(contract) if not name.startswith("_")
                                              and name not in ("catalogue", "errors", "payloads", "text", "topics"))
    assert len(contract.__all__) == 48
