"""Reading entries to wide rows: one per equipment and instant, a column per metric (pure).

The ingest decodes readings as entries (an equipment, an instant, its values by metric key); the
tables hold one row per equipment and instant (safewatch/schema/layout.py). Entries of one key from
several messages of a batch merge into one row, since one COPY may not hold a key twice; a value
given twice for the same equipment, metric and instant keeps the first, as the database keeps the
stored one on redelivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np

from ingest.batching import Readings
from safewatch.schema.layout import READING_TABLES, ReadingTable

# Metric key → index into READING_TABLES, and its column in that table.
_TABLE_OF_KEY = {m.key: t for t, table in enumerate(READING_TABLES) for m in table.metrics}
_COLUMN_OF_KEY = {m.key: c for table in READING_TABLES for c, m in enumerate(table.metrics)}


@dataclass(frozen=True, slots=True)
class WideRows:
    """One table's rows of a batch: keys, and values (rows × the table's columns, NaN where absent)."""

    table: ReadingTable
    equipment_ids: np.ndarray
    ts_ms: np.ndarray
    values: np.ndarray

    @property
    def readings(self) -> int:
        """How many values these rows hold."""
        return int(np.count_nonzero(~np.isnan(self.values)))


def pivot(readings: Readings) -> list[WideRows]:
    """The batch's readings as wide rows, table by table (tables without readings left out).

    Entries are grouped by their shape (their metric keys, in order: a gateway sends the same keys
    each time, so a batch has a few shapes), and each shape's values go into its columns at once.
    """
    if not readings:
        return []
    shapes: dict[tuple[str, ...], int] = {}
    shape_of = np.fromiter((shapes.setdefault(keys, len(shapes)) for keys in map(tuple, readings.values)),
                           dtype=np.int64, count=len(readings.values))
    equipment = np.asarray(readings.equipment_ids, dtype=np.int64)
    ts = np.asarray(readings.ts_ms, dtype=np.int64)
    by_table: dict[int, list[tuple[tuple[str, ...], np.ndarray]]] = {}
    for keys, j in shapes.items():
        tables = {_TABLE_OF_KEY[k] for k in keys}
        if len(tables) != 1:
            raise ValueError(f"an entry's metrics {keys} span {len(tables)} tables; "
                             "give each category's metrics an entry of its own")
        by_table.setdefault(tables.pop(), []).append((keys, np.flatnonzero(shape_of == j)))
    return [_table_rows(READING_TABLES[t], readings, equipment, ts, groups) for t, groups in sorted(by_table.items())]


def _table_rows(table: ReadingTable, readings: Readings, equipment: np.ndarray, ts: np.ndarray,
                groups: list[tuple[tuple[str, ...], np.ndarray]]) -> WideRows:
    """One table's rows: each shape's values placed in its columns, then sorted by key; keys given twice merge."""
    n = sum(len(idx) for _, idx in groups)
    values = np.full((n, len(table.metrics)), np.nan)
    e, s, arrival = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    at = 0
    for keys, idx in groups:
        entries = list(map(readings.values.__getitem__, idx.tolist()))
        flat = np.fromiter(chain.from_iterable(map(dict.values, entries)), dtype=np.float64,
                           count=len(entries) * len(keys))
        values[at:at + len(idx), [_COLUMN_OF_KEY[k] for k in keys]] = flat.reshape(len(idx), len(keys))
        e[at:at + len(idx)], s[at:at + len(idx)], arrival[at:at + len(idx)] = equipment[idx], ts[idx], idx
        at += len(idx)
    order = np.lexsort((arrival, s, e))  # entries of one key in their arrival order, whatever their shapes
    e, s, values = e[order], s[order], values[order]
    if len(e) > 1 and ((e[1:] == e[:-1]) & (s[1:] == s[:-1])).any():
        # A key given by several entries (several messages of a batch): merged value by value, first wins.
        r, c = np.nonzero(~np.isnan(values))  # row-major: rows of one key still in arrival order
        return _rows(table, e[r], s[r], c, values[r, c])
    return WideRows(table, e.astype(np.int32), s, values)


def _rows(table: ReadingTable, e: np.ndarray, s: np.ndarray, c: np.ndarray, v: np.ndarray) -> WideRows:
    order = np.lexsort((s, e))  # stable: readings of one key keep their arrival order
    e, s, c, v = e[order], s[order], c[order], v[order]
    starts = np.empty(len(e), dtype=bool)
    starts[0] = True
    np.not_equal(e[1:], e[:-1], out=starts[1:])
    starts[1:] |= s[1:] != s[:-1]
    row = np.cumsum(starts) - 1
    k = len(table.metrics)
    cell = row * k + c
    values = np.full((int(row[-1]) + 1, k), np.nan)
    if np.bincount(cell, minlength=values.size).max() == 1:  # no value given twice: the usual batch
        values.flat[cell] = v
    else:  # np.unique gives each cell's first index in this (stable) order: the first value given wins
        cells, first = np.unique(cell, return_index=True)
        values.flat[cells] = v[first]
    return WideRows(table, e[starts].astype(np.int32), s[starts], values)
