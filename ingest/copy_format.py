"""PostgreSQL's binary COPY format, packed from columns with numpy (pure: bytes in memory, no I/O).

psycopg's ``write_row`` costs about a microsecond of Python a row; a structured numpy array lays a
whole batch out in the wire format at once (tens of nanoseconds a row). The layout is PostgreSQL's
own (PostgreSQL manual, COPY, "Binary Format"): a signature, then per
row a 16-bit field count and, per field, a 32-bit length and the big-endian value; a -1 trailer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # + flags, header extension
TRAILER = b"\xff\xff"
# timestamptz travels as microseconds since 2000-01-01 UTC.
_PG_EPOCH_US = 946_684_800_000_000

# PostgreSQL type → the numpy big-endian dtype of its binary form
_TYPES: dict[str, str] = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "float8": ">f8", "timestamptz": ">i8"}


def timestamptz_from_ms(ts_ms: Sequence[int] | np.ndarray) -> np.ndarray:
    """Epoch milliseconds as PostgreSQL's binary timestamptz (microseconds since 2000)."""
    return np.asarray(ts_ms, dtype=np.int64) * 1000 - _PG_EPOCH_US


def pack(columns: Sequence[tuple[str, Sequence[float] | np.ndarray]]) -> bytes:
    """A whole binary COPY stream (signature, rows, trailer) of equal-length, non-null columns.

    ``columns`` are (PostgreSQL type, values) in the table's column order; timestamptz values are
    already in PostgreSQL's unit (see `timestamptz_from_ms`).
    """
    if not columns:
        raise ValueError("a COPY row needs at least one column")
    n = len(columns[0][1])
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for i, (pg_type, values) in enumerate(columns):
        if pg_type not in _TYPES:
            raise ValueError(f"no binary COPY packing for PostgreSQL type {pg_type!r}")
        if len(values) != n:
            raise ValueError(f"column {i} has {len(values)} values, column 0 has {n}")
        fields += [(f"len{i}", ">i4"), (f"val{i}", _TYPES[pg_type])]
    rows = np.empty(n, dtype=np.dtype(fields))  # packed: no padding between fields, as the format wants
    rows["count"] = len(columns)
    for i, (pg_type, values) in enumerate(columns):
        rows[f"len{i}"] = np.dtype(_TYPES[pg_type]).itemsize
        rows[f"val{i}"] = values
    return SIGNATURE + rows.tobytes() + TRAILER


def pack_nullable(keys: Sequence[tuple[str, Sequence[float] | np.ndarray]], values: np.ndarray) -> bytes:
    """A binary COPY stream of non-null ``keys`` columns then float8 ``values`` columns, NaN as NULL.

    ``values`` is (rows, columns). A NULL field is its length alone (-1), so rows with different
    NULLs have different sizes: rows are packed in groups of the same NULL pattern (a wide readings
    batch has one or two), in whatever order; COPY does not care.
    """
    n, k = values.shape
    if k > 62:
        raise ValueError(f"{k} nullable columns: at most 62 (one bit each in the NULL pattern)")
    present = ~np.isnan(values)
    if n == 0:
        return SIGNATURE + TRAILER
    if present.all():
        return pack([*keys, *(("float8", values[:, j]) for j in range(k))])
    pattern = present @ (np.int64(1) << np.arange(k, dtype=np.int64))
    groups, of_row = np.unique(pattern, return_inverse=True)
    parts = [SIGNATURE]
    for g, bits in enumerate(groups.tolist()):
        rows = np.flatnonzero(of_row == g)
        fields: list[tuple[str, str]] = [("count", ">i2")]
        for i, (pg_type, _) in enumerate(keys):
            if pg_type not in _TYPES:
                raise ValueError(f"no binary COPY packing for PostgreSQL type {pg_type!r}")
            fields += [(f"klen{i}", ">i4"), (f"key{i}", _TYPES[pg_type])]
        for j in range(k):
            fields.append((f"len{j}", ">i4"))
            if bits >> j & 1:
                fields.append((f"val{j}", ">f8"))
        packed = np.empty(len(rows), dtype=np.dtype(fields))
        packed["count"] = len(keys) + k
        for i, (pg_type, column) in enumerate(keys):
            packed[f"klen{i}"] = np.dtype(_TYPES[pg_type]).itemsize
            packed[f"key{i}"] = np.asarray(column)[rows]
        for j in range(k):
            if bits >> j & 1:
                packed[f"len{j}"] = 8
                packed[f"val{j}"] = values[rows, j]
            else:
                packed[f"len{j}"] = -1
        parts.append(packed.tobytes())
    parts.append(TRAILER)
    return b"".join(parts)
