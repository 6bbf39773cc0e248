"""docs/mqtt-contract.md is the integrator's contract: every example in it must decode, and the
catalogue tables must list exactly the metrics and events the code knows."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import orjson
import pytest

from safewatch.contract import (
    EVENT_TYPES,
    METRICS,
    Kind,
    Limits,
    decode_event,
    decode_status,
    decode_telemetry,
    parse_topic,
)

DOC = (Path(__file__).resolve().parents[3] / "docs" / "mqtt-contract.md").read_text(encoding="utf-8")
EXAMPLE_NOW_MS = 1795593600000  # the timestamp the examples use


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, flags=re.S)


def test_json_examples_decode():
    limits = Limits(EXAMPLE_NOW_MS)
    kinds = []
    for block in _blocks("json"):
        doc = orjson.loads(block)
        payload = block.encode()
        if "readings" in doc:
            message = decode_telemetry(payload, limits)
            assert message.rejected == ()
            assert len(message.readings) == sum(len(e["values"]) for e in doc["readings"])
            kinds.append("telemetry")
        elif "type" in doc:
            assert decode_event(payload, limits).type == doc["type"]
            kinds.append("event")
        else:
            assert decode_status(payload, limits).state == doc["state"]
            kinds.append("status")
    assert sorted(kinds) == ["event", "status", "telemetry"]


def test_mosquitto_pub_examples_use_valid_topics_and_payloads():
    lines = [line for block in _blocks("sh") for line in block.splitlines() if line.startswith("mosquitto_pub")]
    assert len(lines) >= 4
    now_ms = EXAMPLE_NOW_MS
    limits = Limits(now_ms)
    for line in lines:
        args = shlex.split(line.replace("$(date +%s%3N)", str(now_ms)).replace("NOW_MS", str(now_ms)))
        topic = parse_topic(args[args.index("-t") + 1])
        payload = args[args.index("-m") + 1].encode()
        assert args[args.index("-q") + 1] == "1", "every example publishes at QoS 1"
        if topic.kind is Kind.TELEMETRY:
            assert decode_telemetry(payload, limits).rejected == ()
        elif topic.kind is Kind.EVENT:
            decode_event(payload, limits)
        else:
            assert "-r" in args, "status is retained"
            decode_status(payload, limits)


@pytest.mark.parametrize("spec", METRICS, ids=lambda m: m.key)
def test_every_metric_is_documented(spec):
    assert re.search(rf"\| `{spec.key}` \| {re.escape(spec.unit)} \|", DOC)


@pytest.mark.parametrize("spec", EVENT_TYPES, ids=lambda e: e.type)
def test_every_event_is_documented(spec):
    assert f"| `{spec.type}` | {spec.category.value} | {spec.severity} |" in DOC


def test_no_undocumented_extras():
    catalogue = DOC.split("## Catalogue", 1)[1]
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", catalogue, flags=re.M))
    assert documented == {m.key for m in METRICS} | {e.type for e in EVENT_TYPES}
