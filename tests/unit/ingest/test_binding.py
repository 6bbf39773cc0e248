"""Binding a decoded message to the registry (ingest.batching): a gateway's batch as it should be is
added whole, and anything else entry by entry, with the same result."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ingest.batching import CATEGORY_KEYS, Batch, Bound, RawMessage, _add_each, _add_whole
from safewatch.contract import Entry

NOW = 1_795_593_600_000
GATEWAY = "gw-1"
REGISTRY = {
    "110015000000000001": Bound(1, GATEWAY, "1000"),  # a boiler of this gateway
    "311015000000000002": Bound(2, GATEWAY, "3000"),  # an elevator of this gateway
    "110015000000000003": Bound(3, "gw-2", "1000"),  # bound to another gateway
    "999915000000000004": Bound(4, GATEWAY, "9000"),  # a category with no metrics
}
CODES = [*REGISTRY, "110015000000000009"]  # and one not in the registry
METRICS = sorted(CATEGORY_KEYS["1000"])[:4] + sorted(CATEGORY_KEYS["3000"])[:4]
MESSAGE = RawMessage(f"se/v1/150100/{GATEWAY}/telemetry", b"{}")


def _both(entries: tuple[Entry, ...]) -> tuple[bool, Batch, Batch]:
    whole, each = Batch(), Batch()
    taken = _add_whole(whole.readings, GATEWAY, REGISTRY, entries)
    _add_each(each, MESSAGE, GATEWAY, REGISTRY, entries)
    return taken, whole, each


def test_a_gateway_batch_as_it_should_be_is_added_whole() -> None:
    entries = (Entry(CODES[0], NOW, {"drum_pressure": 1.0, "drum_level": -12.0}),
               Entry(CODES[1], NOW, {"speed": 1.5}), Entry(CODES[0], NOW + 1000, {"drum_pressure": 1.1}))
    taken, whole, each = _both(entries)
    assert taken
    assert whole == each
    assert (whole.readings.equipment_ids, whole.readings.ts_ms, len(whole.readings)) == ([1, 2, 1],
                                                                                          [NOW, NOW, NOW + 1000], 4)


@given(st.lists(st.tuples(st.sampled_from(CODES), st.sampled_from([NOW, NOW + 1000]),
                          st.dictionaries(st.sampled_from(METRICS), st.floats(0, 1), min_size=1, max_size=4)),
                min_size=1, max_size=6))
def test_any_message_binds_whole_exactly_as_entry_by_entry(spec: list[tuple[str, int, dict[str, float]]]) -> None:
    entries = tuple(Entry(code, ts, values) for code, ts, values in spec)
    taken, whole, each = _both(entries)
    fine = all(REGISTRY.get(e.equipment, Bound(0, None, "")).gateway_id == GATEWAY
               and e.values.keys() <= CATEGORY_KEYS.get(REGISTRY[e.equipment].category, frozenset())
               for e in entries)
    assert taken == fine
    assert whole == (each if taken else Batch())  # added whole as entry by entry would; else nothing
