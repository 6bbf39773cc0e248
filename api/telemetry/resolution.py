"""Which stored resolution a chart reads (pure): raw readings, 1-minute or 1-hour rollups.

A chart shows a few hundred to a few thousand points per metric whatever its span: the last hour
at the devices' own rate (≈ 1 Hz → 3,600), the last day by minute (1,440), a week by hour (168).
Past the retention of the raw readings and the 1-minute rollups only the hourly rollups are kept,
so a span that starts that far back reads them whatever its length.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from safewatch.schema.layout import RETENTION


class Resolution(StrEnum):
    """A stored resolution; the value names its table."""

    RAW = "readings"
    MINUTE = "readings_1m"
    HOUR = "readings_1h"


RAW_UP_TO = timedelta(hours=1)
MINUTE_UP_TO = timedelta(days=1)
MAX_SPAN = timedelta(days=400)


def choose_resolution(start: datetime, end: datetime, now: datetime) -> Resolution:
    """The coarsest resolution that still shows the span in detail and is still kept at ``start``;
    raises ValueError on a bad span."""
    span = end - start
    if span <= timedelta(0):
        raise ValueError(f"'from' ({start.isoformat()}) must be before 'to' ({end.isoformat()})")
    if span > MAX_SPAN:
        raise ValueError(f"span of {span.days} days is over the {MAX_SPAN.days}-day limit; ask for less")
    if start < now - RETENTION:
        return Resolution.HOUR
    if span <= RAW_UP_TO:
        return Resolution.RAW
    if span <= MINUTE_UP_TO:
        return Resolution.MINUTE
    return Resolution.HOUR
