"""The numpy binary COPY packer against the format written out field by field with struct."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import pytest

from ingest.copy_format import SIGNATURE, TRAILER, pack, pack_nullable, timestamptz_from_ms

PG_EPOCH_MS = 946_684_800_000  # 2000-01-01T00:00:00Z


def _by_hand(rows: list[tuple[int, int, int, float]]) -> bytes:
    out = SIGNATURE
    for ts_us, eq, metric, value in rows:
        out += struct.pack(">h", 4) + struct.pack(">iq", 8, ts_us) + struct.pack(">ii", 4, eq)
        out += struct.pack(">ih", 2, metric) + struct.pack(">id", 8, value)
    return out + TRAILER


def test_rows_are_packed_as_postgresql_reads_them():
    ts_ms = [PG_EPOCH_MS, PG_EPOCH_MS - 1, 1_795_593_600_123]
    columns: list[tuple[str, Sequence[float] | np.ndarray]] = [
               ("timestamptz", timestamptz_from_ms(ts_ms)), ("int4", [1, 2_000_000_000, 7]),
               ("int2", [1, 32_000, 40]), ("float8", [0.5, -12, 1e300])]  # an int among the floats
    assert pack(columns) == _by_hand([(0, 1, 1, 0.5), (-1000, 2_000_000_000, 32_000, -12.0),
                                      ((1_795_593_600_123 - PG_EPOCH_MS) * 1000, 7, 40, 1e300)])


def test_an_empty_batch_is_a_valid_empty_stream():
    assert pack([("int4", []), ("float8", [])]) == SIGNATURE + TRAILER


@pytest.mark.parametrize(("columns", "message"), [
    ([], "at least one column"),
    ([("text", ["a"])], "no binary COPY packing"),
    ([("int4", [1, 2]), ("float8", [1.0])], "column 1 has 1 values"),
])
def test_what_cannot_be_packed_says_why(columns, message):
    with pytest.raises(ValueError, match=message):
        pack(columns)


def test_nulls_are_packed_as_a_length_of_minus_one_in_rows_of_any_pattern():
    nan = float("nan")
    ts_ms = [PG_EPOCH_MS, PG_EPOCH_MS + 1, PG_EPOCH_MS + 2]
    values = np.array([[1.0, nan, 3.0], [nan, nan, 6.0], [7.0, 8.0, 9.0]])
    stream = pack_nullable([("timestamptz", timestamptz_from_ms(ts_ms)), ("int4", [5, 6, 7])], values)

    def row(ts_us: int, eq: int, cells: list[float]) -> bytes:
        out = struct.pack(">h", 5) + struct.pack(">iq", 8, ts_us) + struct.pack(">ii", 4, eq)
        return out + b"".join(struct.pack(">i", -1) if c != c else struct.pack(">id", 8, c) for c in cells)

    rows = {row(0, 5, [1.0, nan, 3.0]), row(1000, 6, [nan, nan, 6.0]), row(2000, 7, [7.0, 8.0, 9.0])}
    assert stream.startswith(SIGNATURE) and stream.endswith(TRAILER)
    body = stream[len(SIGNATURE):-len(TRAILER)]
    # Rows come grouped by NULL pattern, in no promised order: compare them as a set.
    assert len(body) == sum(map(len, rows)) and all(r in body for r in rows)


def test_rows_without_nulls_pack_as_the_plain_packer_does():
    values = np.array([[1.0, 2.0], [3.0, 4.0]])
    keys = [("int4", [1, 2])]
    assert pack_nullable(keys, values) == pack([*keys, ("float8", values[:, 0]), ("float8", values[:, 1])])
    assert pack_nullable([("int4", [])], np.empty((0, 2))) == SIGNATURE + TRAILER
