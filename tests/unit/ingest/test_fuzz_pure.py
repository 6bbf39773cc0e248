"""A short version of bench/fuzz (pure): mutated messages mixed into a valid stream never break the ingest's
assembly, make at most one dead letter each, and everything they leave to write can be stored."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.fuzz.mutations import Fleet, check, decode_and_check, mutate, valid_message
from ingest.batching import MAX_REASONS_SHOWN, RawMessage, assemble, dead_letter_key
from safewatch.contract import Limits
from safewatch.registry.divisions import parse_divisions, shipped_divisions_text
from safewatch.registry.seed import demo_registry

NOW = 1_795_593_600_000
LIMITS = Limits(NOW)
_REG = demo_registry(parse_divisions(shipped_divisions_text()), 40, seed=5)
FLEET = Fleet(_REG.equipment, _REG.gateways)


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), text=st.one_of(st.none(), st.text(max_size=6)))
def test_a_mutated_message_in_a_valid_stream(seed, text):
    rng = random.Random(seed)
    messages = [valid_message(rng, FLEET, NOW) for _ in range(5)]
    messages.insert(rng.randrange(6), mutate(rng, valid_message(rng, FLEET, NOW), text=text))
    batch = decode_and_check(messages, FLEET.registry, LIMITS)
    # The valid messages lose nothing for the bad one beside them.
    alone = sum(len(assemble([m], FLEET.registry, LIMITS).readings) for m in messages)
    assert len(batch.readings) == alone


def test_three_thousand_seeded_mutations():
    rng = random.Random(21)
    messages = [mutate(rng, valid_message(rng, FLEET, NOW)) for _ in range(3_000)]
    for i in range(0, len(messages), 500):
        check(messages[i:i + 500], assemble(messages[i:i + 500], FLEET.registry, LIMITS))


def test_a_message_with_many_problems_makes_one_dead_letter_with_its_first_reasons_and_counts():
    gw = FLEET.gateways[0]
    code, _ = FLEET.by_gateway[gw][0]
    topic = f"se/v1/{FLEET.league[gw]}/{gw}/telemetry"
    entries = b",".join([b'{"equipment":"%s","values":{"speed":1e9}}' % code.encode()] * 1000 + [b"0"] * 5000)
    payload = b'{"ts":%d,"readings":[%s]}' % (NOW, entries)
    batch = assemble([RawMessage(topic, payload)], FLEET.registry, LIMITS)
    (letter,) = batch.dead_letters
    assert letter.payload == payload and letter.reason == "malformed_payload"
    assert dict(letter.reasons()) == {"value_out_of_range": 1000, "malformed_payload": 5000}
    assert letter.detail.startswith("6000 problems in this message: value_out_of_range ×1000, malformed_payload ×5000")
    assert letter.detail.count(". [") == MAX_REASONS_SHOWN
    assert dead_letter_key(topic, payload) == dead_letter_key(topic, bytes(payload))
    assert dead_letter_key(topic, payload) != dead_letter_key(topic + "x", payload)
