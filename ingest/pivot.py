"""Narrow reading columns to wide rows: one per equipment and instant, a column per metric (pure).

The ingest decodes readings as (equipment, metric, time, value) columns; the tables hold one row per
equipment and instant (safewatch/schema/layout.py). Rows of one key from several messages of a batch
merge into one row, since one COPY may not hold a key twice; a value given twice for the same
equipment, metric and instant keeps the first, as the database keeps the stored one on redelivery.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest.batching import Readings
from safewatch.schema.layout import READING_TABLES, ReadingTable

_TOP = max(m.id for t in READING_TABLES for m in t.metrics) + 1
_TABLE_OF = np.full(_TOP, -1, dtype=np.int64)  # metric id → index into READING_TABLES
_COLUMN_OF = np.full(_TOP, -1, dtype=np.int64)  # metric id → its column in that table
for _t, _table in enumerate(READING_TABLES):
    for _c, _m in enumerate(_table.metrics):
        _TABLE_OF[_m.id], _COLUMN_OF[_m.id] = _t, _c


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
    """The batch's readings as wide rows, table by table (tables without readings left out)."""
    if not readings:
        return []
    metric = np.asarray(readings.metric_ids, dtype=np.int64)
    equipment = np.asarray(readings.equipment_ids, dtype=np.int64)
    ts = np.asarray(readings.ts_ms, dtype=np.int64)
    value = np.asarray(readings.values, dtype=np.float64)
    table_of = _TABLE_OF[metric]
    tables = np.unique(table_of)
    out = []
    for t in tables.tolist():
        if len(tables) == 1:
            e, s, c, v = equipment, ts, _COLUMN_OF[metric], value
        else:
            mine = table_of == t
            e, s, c, v = equipment[mine], ts[mine], _COLUMN_OF[metric[mine]], value[mine]
        out.append(_rows(READING_TABLES[t], e, s, c, v))
    return out


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
