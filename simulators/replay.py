"""Replay a recorded CSV time series through the wire contract, as one equipment's gateway would send it.

Columns are mapped to catalogue metrics (``--map col=metric``); one column holds the time (epoch
seconds or milliseconds, or ISO 8601; a time without an offset is read in ``default_offset``, Beijing
time by default). Timestamps are kept, or shifted so the replay ends in the present (ingest accepts
at most 7 days back and 5 minutes ahead). ``speed`` scales the recorded spacing (10: ten times faster;
0: as fast as the broker acknowledges).

`plan_replay` is pure (rows in, timed readings out, errors naming row and column); `replay` publishes.
"""

from __future__ import annotations

import csv
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

import psycopg

from safewatch.contract import METRICS_BY_KEY, Category, encode_telemetry
from safewatch.settings import Settings
from simulators.identity import client_prefix as client_prefix_for
from simulators.simulation import SimEquipment
from simulators.transport import MqttMux

log = logging.getLogger(__name__)

BEIJING = timezone(timedelta(hours=8))

SELECT_EQUIPMENT = """
SELECT e.code, e.category, e.rated, e.gateway_id, g.league_code, e.variety
FROM equipment e JOIN gateways g ON g.id = e.gateway_id
WHERE e.code = %(code)s
"""


class Point(NamedTuple):
    """One row to publish: its (possibly shifted) time and the values of the mapped metrics."""

    ts_ms: int
    values: dict[str, float]


def parse_mapping(pairs: Iterable[str], category: str | None = None) -> dict[str, str]:
    """``col=metric`` pairs → {column: metric}; metrics must be in the catalogue (and of the category)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, metric = pair.partition("=")
        if not sep or not column or not metric:
            raise ValueError(f"--map {pair!r} is not COLUMN=METRIC")
        spec = METRICS_BY_KEY.get(metric)
        if spec is None:
            raise ValueError(f"--map {pair!r}: {metric!r} is not a catalogue metric; see docs/mqtt-contract.md")
        if category is not None and spec.category is not Category(category):
            raise ValueError(f"--map {pair!r}: {metric} is a {spec.category.name.lower()} metric, "
                             f"not one of category {category}")
        mapping[column] = metric
    if not mapping:
        raise ValueError("map at least one column to a metric with --map COLUMN=METRIC")
    return mapping


def parse_time(text: str, default_offset: timezone = BEIJING) -> int:
    """Epoch ms from epoch seconds / milliseconds or an ISO 8601 time (naive times in ``default_offset``)."""
    try:
        number = float(text)
    except ValueError:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=default_offset)
        return int(parsed.timestamp() * 1000)
    if not math.isfinite(number):
        raise ValueError(f"time {text!r} is not finite")
    return int(number if number > 1e11 else number * 1000)  # below 1e11 it can only be seconds


def plan_replay(rows: Iterable[Mapping[str, str]], *, time_column: str, mapping: Mapping[str, str],
                default_offset: timezone = BEIJING) -> list[Point]:
    """The points of a CSV, in time order; empty cells are skipped, anything else unreadable is an error."""
    points = []
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        if time_column not in row:
            raise ValueError(f"no time column {time_column!r}; the header has {sorted(row)} (use --time-column)")
        missing = [c for c in mapping if c not in row]
        if missing:
            raise ValueError(f"mapped column(s) {missing} not in the header {sorted(row)}")
        try:
            ts_ms = parse_time(row[time_column], default_offset)
        except ValueError:
            raise ValueError(f"row {number}, column {time_column!r}: {row[time_column]!r} is not a time "
                             "(epoch s/ms or ISO 8601)") from None
        values = {}
        for column, metric in mapping.items():
            cell = (row[column] or "").strip()
            if not cell:
                continue
            try:
                values[metric] = float(cell)
            except ValueError:
                raise ValueError(f"row {number}, column {column!r}: {cell!r} is not a number") from None
        if values:
            points.append(Point(ts_ms, values))
    points.sort(key=lambda p: p.ts_ms)
    return points


def shift_offset(points: list[Point], *, now_ms: int, speed: float) -> int:
    """The shift (ms) that ends the replay in the present without any point ever lying in the future."""
    if not points:
        return 0
    span = points[-1].ts_ms - points[0].ts_ms
    if speed <= 0:
        return now_ms - points[-1].ts_ms
    if speed <= 1:
        return now_ms - points[0].ts_ms
    return now_ms + int(span / speed) - points[-1].ts_ms


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def find_equipment(conn: psycopg.Connection, code: str) -> SimEquipment | None:
    row = conn.execute(SELECT_EQUIPMENT, {"code": code}).fetchone()
    if row is None:
        return None
    code, category, rated, gateway_id, league, variety = row
    return SimEquipment(code, category, {k: float(v) for k, v in (rated or {}).items()}, gateway_id, league,
                        variety or "")


def replay(settings: Settings, *, equipment: SimEquipment, points: list[Point], speed: float = 1.0,
           shift_ms: int = 0, client_prefix: str | None = None, progress: Callable[[int, int], None] | None = None,
           stop: Callable[[], bool] = lambda: False) -> int:
    """Publish ``points`` (QoS 1, acks awaited) on the equipment's gateway topic; return how many were sent.

    A side tool (`simulators.identity`): a client id of its own run (``replay-<run>-<gateway>`` unless
    ``client_prefix`` is given), no last will and no status, whether or not the gateway is live elsewhere.
    """
    from simulators.gateway import Gateway

    gateway = Gateway(equipment.gateway_id, equipment.league, presence=False)
    prefix = client_prefix or client_prefix_for(tool="replay", run=secrets.token_hex(3), owner=False)
    mux = MqttMux(settings.mqtt, client_prefix=prefix, protocol5=settings.mqtt.protocol5)
    mux.connect([(equipment.gateway_id, gateway.will())])
    sent = 0
    try:
        wall0, first = time.time(), points[0].ts_ms if points else 0
        for i, point in enumerate(points):
            if stop():
                break
            if speed > 0:
                due = wall0 + (point.ts_ms - first) / 1000 / speed
                while (remaining := due - time.time()) > 0:
                    mux.service(min(remaining, 0.25))
            mux.publish(equipment.gateway_id, gateway.telemetry_topic,
                        encode_telemetry({equipment.code: point.values}, point.ts_ms + shift_ms))
            sent += 1
            mux.service(0)
            if progress is not None and (i + 1) % 1000 == 0:
                progress(i + 1, len(points))
        left = mux.flush(60)
        if left:
            raise RuntimeError(f"{left} messages were not acknowledged by the broker within 60 s")
    finally:
        mux.close()
    if progress is not None:
        progress(sent, len(points))
    return sent
