"""Where readings live: one wide table per equipment category, a column per metric (schema 030-032).

One row holds one equipment's values at one instant, keyed (equipment_id, time); a metric the
message did not carry is NULL. The narrow view ``readings (time, equipment_id, metric_id, value)``
and the rollups ``readings_1m`` / ``readings_1h`` unfold these rows for the readers, so chart and
test queries do not change. Why wide: docs/decisions/wide-readings.md.

The catalogue owns the metrics; this module derives from it the tables and columns the migrations
must create, and tests/integration/test_schema.py checks a migrated database against it, so a metric
added to the catalogue without its migration (``ALTER TABLE … ADD COLUMN``, nullable, no rewrite)
fails there and not in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from safewatch.contract import METRICS, Category, MetricSpec


@dataclass(frozen=True, slots=True)
class ReadingTable:
    """One category's readings table and its rollups."""

    category: Category
    name: str  # e.g. elevator_readings
    metrics: tuple[MetricSpec, ...]  # the value columns, in table order (metric id order)

    @property
    def columns(self) -> tuple[str, ...]:
        """The value columns (metric keys)."""
        return tuple(m.key for m in self.metrics)

    @property
    def minute(self) -> str:
        """Its 1-minute rollup: a continuous aggregate on TimescaleDB (plain: rows of readings_1m)."""
        return f"{self.name}_1m"

    @property
    def hour(self) -> str:
        return f"{self.name}_1h"


def _tables() -> tuple[ReadingTable, ...]:
    return tuple(
        ReadingTable(category, f"{category.name.lower()}_readings",
                     tuple(sorted((m for m in METRICS if m.category == category), key=lambda m: m.id)))
        for category in Category)


READING_TABLES: tuple[ReadingTable, ...] = _tables()
TABLE_OF_METRIC: dict[int, ReadingTable] = {m.id: t for t in READING_TABLES for m in t.metrics}

# How long readings and their 1-minute rollups are kept: a year and an inspection cycle's margin.
# The hourly rollups are kept for good. Schemas 030/032 (readings) and 035 (rollups) say the same.
RETENTION = timedelta(days=400)
