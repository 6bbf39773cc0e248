"""Reading entries to wide rows: every reading lands in its table's row once, the first value wins."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.batching import METRIC_IDS, ReadingRow, Readings
from ingest.pivot import pivot
from safewatch.contract import METRICS
from safewatch.schema.layout import READING_TABLES


def _unfold(readings: Readings) -> dict[tuple[int, int, int], float]:
    """What the wide rows say, as (equipment, metric, ts) → value: the readings view's shape."""
    out = {}
    for rows in pivot(readings):
        for i, (eq, ts) in enumerate(zip(rows.equipment_ids.tolist(), rows.ts_ms.tolist(), strict=True)):
            for j, spec in enumerate(rows.table.metrics):
                value = rows.values[i, j]
                if not math.isnan(value):
                    out[(eq, spec.id, ts)] = float(value)
    return out


def test_metrics_of_one_instant_from_several_messages_make_one_row():
    speed, load = (next(m.id for m in METRICS if m.key == k) for k in ("speed", "load"))
    readings = Readings.of([ReadingRow(7, speed, 1000, 1.5), ReadingRow(7, load, 1000, 40.0),
                            ReadingRow(7, speed, 2000, 1.6), ReadingRow(8, speed, 1000, 0.0)])
    (rows,) = pivot(readings)
    assert rows.table.name == "elevator_readings"
    assert sorted(zip(rows.equipment_ids.tolist(), rows.ts_ms.tolist(), strict=True)) == [(7, 1000), (7, 2000),
                                                                                          (8, 1000)]
    assert rows.readings == 4


def test_each_category_goes_to_its_own_table():
    readings = Readings.of([ReadingRow(1, t.metrics[0].id, 1000, 1.0) for t in READING_TABLES])
    assert [r.table for r in pivot(readings)] == list(READING_TABLES)
    assert pivot(Readings()) == []


_metric_ids = st.sampled_from([m.id for m in METRICS])
_rows = st.lists(st.builds(ReadingRow, st.integers(1, 5), _metric_ids, st.integers(0, 4),
                           st.floats(-1e6, 1e6, allow_nan=False)), max_size=60)


@given(_rows)
def test_pivot_keeps_every_reading_once_and_the_first_value_given(rows):
    first: dict[tuple[int, int, int], float] = {}
    for r in rows:
        first.setdefault((r.equipment_id, r.metric_id, r.ts_ms), r.value)
    assert _unfold(Readings.of(rows)) == first
    assert sum(w.readings for w in pivot(Readings.of(rows))) == len(first)


_CATEGORY_KEYS = [[m.key for m in t.metrics] for t in READING_TABLES]
_entries = st.lists(st.tuples(
    st.integers(1, 4), st.integers(0, 3),
    st.sampled_from(_CATEGORY_KEYS).flatmap(lambda keys: st.permutations(keys).flatmap(
        lambda order: st.integers(1, len(order)).flatmap(lambda n: st.fixed_dictionaries(
            {k: st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False)) for k in order[:n]}))))),
    max_size=40)


@given(_entries, st.booleans())
def test_entries_of_any_shape_and_order_keep_every_reading_once_and_the_first_value_given(entries, one_by_one):
    """Gateways may send any subset of a category's metrics, in any order, and one key in several messages."""
    readings = Readings()
    first: dict[tuple[int, int, int], float] = {}
    for eq, ts, values in entries:
        if one_by_one:  # the per-metric path (a metric of another category refused, the rest kept)
            for key, value in values.items():
                readings.append(ReadingRow(eq, METRIC_IDS[key], ts, value))
        else:
            readings.add(eq, ts, values)
        for key, value in values.items():
            first.setdefault((eq, METRIC_IDS[key], ts), float(value))
    assert len(readings) == sum(len(values) for _, _, values in entries)
    assert _unfold(readings) == first
    assert sorted(readings) == sorted(ReadingRow(eq, METRIC_IDS[k], ts, v) for eq, ts, values in entries
                                      for k, v in values.items())
    for rows in pivot(readings):  # one row per key, in key order: what one COPY takes
        keys = list(zip(rows.equipment_ids.tolist(), rows.ts_ms.tolist(), strict=True))
        assert keys == sorted(set(keys))


def test_an_entry_mixing_categories_is_refused_with_what_to_do():
    readings = Readings()
    readings.add(1, 1000, {"speed": 1.0, "drum_pressure": 0.8})  # bind never makes one: it checks the category
    with pytest.raises(ValueError, match="give each category's metrics an entry of its own"):
        pivot(readings)
