"""Bulk import and export of equipment as CSV or XLSX.

All or nothing: every row of the file is validated first (on its own, then against the registry)
and every bad row is reported with its line number, field and reason; only a file without a single
bad row is written, in one transaction (COPY into a temporary table, then one INSERT … SELECT and one
audit INSERT). A half-imported file would leave the clerk to work out which half, so we never write one.

The column layout (`COLUMNS`) is the same for import and export, so an export can be edited and re-imported.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
import psycopg
from pydantic import ValidationError

from safewatch.registry.records import (
    RATED_KEYS,
    DivisionRef,
    EquipmentRecord,
    References,
    reference_problems,
)

log = logging.getLogger(__name__)

RECORD_COLUMNS: tuple[str, ...] = (
    "code", "variety", "category", "registration_no", "unit_uscc", "banner_code", "lat", "lon", "address",
    "manufacturer", "model", "manufactured_on", "commissioned_on", "status", "last_inspection_on",
    "next_inspection_on", "gateway_id", "rescue_code",
)
# Rated parameters travel flattened, one column per key, so a spreadsheet can edit them.
COLUMNS: tuple[str, ...] = RECORD_COLUMNS + RATED_KEYS
REQUIRED_COLUMNS = ("code", "unit_uscc", "banner_code")
MAX_ERRORS_KEPT = 10_000  # a file wrong on every line still gets a bounded report


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad row: its line in the file (1 = the header), the field, and why."""

    line: int
    field: str
    message: str
    kind: str = "invalid"  # or a `Problem` kind: unknown, forbidden, duplicate, retired, mismatch

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass
class ImportResult:
    """What an import did: rows read, rows written (0 unless every row was good), the errors found."""

    rows: int = 0
    inserted: int = 0
    errors: list[RowError] = field(default_factory=list)
    errors_total: int = 0

    @property
    def ok(self) -> bool:
        return self.errors_total == 0


class ImportFormatError(ValueError):
    """The file itself is unusable (no header, unknown or missing columns, not CSV/XLSX)."""


# --- reading (pure over text/bytes) ---

def read_rows(data: bytes, *, filename: str = "upload.csv") -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and ``(line, row)`` pairs of a CSV (UTF-8, BOM allowed) or XLSX file."""
    if filename.lower().endswith(".xlsx") or data[:4] == b"PK\x03\x04":
        return _read_xlsx(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"the file is not UTF-8 (byte {exc.start}); save it as CSV UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    _check_header(header)
    rows = []
    for row in reader:
        if None in row:
            rows.append((reader.line_num, {"__extra__": "more values than header columns"}))
            continue
        rows.append((reader.line_num, row))
    return header, rows


def _read_xlsx(data: bytes) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    from openpyxl import load_workbook  # only when someone imports a spreadsheet

    try:
        sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).worksheets[0]
    except Exception as exc:  # openpyxl raises many types for a damaged file
        raise ImportFormatError(f"not a readable XLSX workbook: {exc}") from None
    values = sheet.iter_rows(values_only=True)
    header = [str(h).strip() if h is not None else "" for h in next(values, ())]
    _check_header(header)
    rows = []
    for line, raw in enumerate(values, start=2):
        if raw is None or all(v is None for v in raw):
            continue
        rows.append((line, {h: _cell(v) for h, v in zip(header, raw, strict=False)}))
    return header, rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):  # openpyxl reads a date-formatted cell as a datetime
        return value.date().isoformat()
    return str(value)


def _check_header(header: Sequence[str]) -> None:
    if not header:
        raise ImportFormatError("the file has no header row; the first row names the columns: " + ",".join(COLUMNS))
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise ImportFormatError(f"line 1: unknown columns {unknown}; known columns are {', '.join(COLUMNS)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ImportFormatError(f"line 1: required columns {missing} are missing")


def record_input(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as `EquipmentRecord` input: empty cells are absent, rated columns gathered into ``rated``."""
    out: dict[str, Any] = {}
    rated: dict[str, Any] = {}
    for key, value in row.items():
        value = value.strip() if isinstance(value, str) else value
        if value in ("", None):
            continue
        if key in RATED_KEYS:
            rated[key] = _number(value)
        else:
            out[key] = value
    out["rated"] = rated
    return out


def _number(value: str) -> float | str:
    """Rated cells as numbers (so ``18.0`` is a valid floor count); anything else is left for the model to name."""
    try:
        return float(value)
    except ValueError:
        return value


def validate_rows(rows: Iterable[tuple[int, dict[str, str]]], refs: References, *,
                  progress: Callable[[int], None] | None = None,
                  ) -> tuple[list[tuple[int, EquipmentRecord]], list[RowError], int]:
    """Check every row; returns the good records, the first `MAX_ERRORS_KEPT` errors, and the error count."""
    good: list[tuple[int, EquipmentRecord]] = []
    errors: list[RowError] = []
    total_errors = 0
    first_line: dict[str, int] = {}

    def report(line: int, field_: str, message: str, kind: str = "invalid") -> None:
        nonlocal total_errors
        total_errors += 1
        if len(errors) < MAX_ERRORS_KEPT:
            errors.append(RowError(line, field_, message, kind))

    n = 0
    for n, (line, row) in enumerate(rows, start=1):
        if progress is not None and n % 5000 == 0:
            progress(5000)
        if "__extra__" in row:
            report(line, "row", row["__extra__"])
            continue
        try:
            record = EquipmentRecord.model_validate(record_input(row))
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                report(line, ".".join(str(p) for p in err["loc"]) or "row", _message(err["msg"]))
            continue
        problems = reference_problems(record, refs)
        duplicate = record.code in first_line
        if duplicate:
            report(line, "code", f"{record.code} also appears on line {first_line[record.code]}", "duplicate")
        else:
            first_line[record.code] = line
        for p in problems:
            report(line, p.field, p.message, p.kind)
        if not problems and not duplicate:
            good.append((line, record))
    if progress is not None:
        progress(n % 5000)
    return good, errors, total_errors


def _message(msg: str) -> str:
    return msg.removeprefix("Value error, ")


# --- the database side ---

SELECT_DIVISION_REFS = "SELECT code, level, league_code, region_code FROM divisions"
SELECT_UNIT_REFS = "SELECT uscc, retired_at IS NOT NULL FROM units"
SELECT_GATEWAY_REFS = "SELECT id, league_code FROM gateways WHERE retired_at IS NULL"
SELECT_CODES = "SELECT code FROM equipment"
CREATE_STAGE = """
CREATE TEMP TABLE equipment_import (
    line integer, code text, category text, variety text, registration_no text, unit_uscc text, banner_code text,
    lat double precision, lon double precision, address text, manufacturer text, model text,
    manufactured_on date, commissioned_on date, rated jsonb, status text, last_inspection_on date,
    next_inspection_on date, gateway_id text, rescue_code text
) ON COMMIT DROP
"""
COPY_STAGE = """
COPY equipment_import (line, code, category, variety, registration_no, unit_uscc, banner_code, lat, lon, address,
    manufacturer, model, manufactured_on, commissioned_on, rated, status, last_inspection_on, next_inspection_on,
    gateway_id, rescue_code) FROM STDIN
"""
INSERT_FROM_STAGE = """
INSERT INTO equipment (code, category, variety, registration_no, unit_id, banner_code, lat, lon, address,
    manufacturer, model, manufactured_on, commissioned_on, rated, status, last_inspection_on, next_inspection_on,
    gateway_id, rescue_code, retired_at)
SELECT s.code, s.category, s.variety, s.registration_no, u.id, s.banner_code, s.lat, s.lon, s.address,
    s.manufacturer, s.model, s.manufactured_on, s.commissioned_on, s.rated, s.status, s.last_inspection_on,
    s.next_inspection_on, s.gateway_id, s.rescue_code,
    CASE WHEN s.status IN ('scrapped', 'cancelled') THEN now() END
FROM equipment_import s JOIN units u ON u.uscc = s.unit_uscc
ORDER BY s.line
"""
INSERT_IMPORT_AUDIT = """
INSERT INTO equipment_audit (equipment_id, actor, action, changes)
SELECT e.id, %(actor)s, 'import', to_jsonb(s) - 'line' || jsonb_build_object('source', %(source)s::text, 'line', s.line)
FROM equipment_import s JOIN equipment e ON e.code = s.code
"""


def load_references(conn: psycopg.Connection, *, scope: str | None) -> References:
    """Everything an import checks rows against, in a handful of queries (fine for ~10⁶ equipment)."""
    divisions: dict[str, DivisionRef] = {}
    ancestors: dict[str, set[str]] = {}
    for code, level, league, region in _tuples(conn.execute(SELECT_DIVISION_REFS)):
        divisions[code] = DivisionRef(level, league)
        ancestors[code] = {code, league, region} - {None}
    units = {uscc: retired for uscc, retired in _tuples(conn.execute(SELECT_UNIT_REFS))}
    gateways = {gid: league for gid, league in _tuples(conn.execute(SELECT_GATEWAY_REFS))}
    codes = {code for (code,) in _tuples(conn.execute(SELECT_CODES))}
    return References(divisions=divisions,
                      in_scope=lambda code: scope is None or scope in ancestors.get(code, ()),
                      units=units, gateways=gateways, codes_taken=codes)


def _tuples(cursor: psycopg.Cursor[Any]) -> Iterator[tuple[Any, ...]]:
    """Rows as tuples whatever the connection's row factory (the API's pool returns dicts)."""
    for row in cursor:
        yield tuple(row.values()) if isinstance(row, dict) else tuple(row)


def import_equipment(conn: psycopg.Connection, data: bytes, *, actor: str, scope: str | None,
                     source: str = "upload.csv", progress: Callable[[str, int, int], None] | None = None,
                     ) -> ImportResult:
    """Validate every row of ``data``; write all of them in one transaction only when none is bad.

    ``scope`` limits the banners rows may name (None: the whole registry, for the CLI run by an operator).
    ``progress(phase, done, total)`` is called while validating and writing.
    """
    _, rows = read_rows(data, filename=source)
    result = ImportResult(rows=len(rows))
    with conn.transaction():
        refs = load_references(conn, scope=scope)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress("validate", min(done, len(rows)), len(rows))

    good, result.errors, result.errors_total = validate_rows(rows, refs, progress=step)
    if not result.ok:
        log.info("import refused", extra={"source": source, "rows": len(rows), "errors": result.errors_total})
        return result
    with conn.transaction():
        conn.execute(CREATE_STAGE)
        with conn.cursor().copy(COPY_STAGE) as copy:
            for n, (line, r) in enumerate(good, start=1):
                copy.write_row((line, r.code, r.category, r.variety, r.registration_no, r.unit_uscc, r.banner_code,
                                r.lat, r.lon, r.address, r.manufacturer, r.model, r.manufactured_on,
                                r.commissioned_on, orjson.dumps(r.rated).decode(), str(r.status),
                                r.last_inspection_on, r.next_inspection_on, r.gateway_id, r.rescue_code))
                if progress is not None and n % 10_000 == 0:
                    progress("write", n, len(good))
        inserted = conn.execute(INSERT_FROM_STAGE).rowcount
        conn.execute(INSERT_IMPORT_AUDIT, {"actor": actor, "source": source})
    if progress is not None:
        progress("write", len(good), len(good))
    result.inserted = inserted
    log.info("import committed", extra={"source": source, "rows": inserted, "actor": actor})
    return result


def import_file(conn: psycopg.Connection, path: Path, **kwargs: Any) -> ImportResult:
    return import_equipment(conn, path.read_bytes(), source=path.name, **kwargs)


# --- export ---

def export_select(where: str) -> str:
    """The export query over equipment ``e`` and its banner ``d`` filtered by ``where``, in `COLUMNS` order."""
    rated = ", ".join(f"e.rated->>'{k}' AS {k}" for k in RATED_KEYS)
    return f"""
SELECT e.code, e.variety, e.category, e.registration_no, u.uscc AS unit_uscc, e.banner_code, e.lat, e.lon,
       e.address, e.manufacturer, e.model, e.manufactured_on, e.commissioned_on, e.status, e.last_inspection_on,
       e.next_inspection_on, e.gateway_id, e.rescue_code, {rated}
FROM equipment e JOIN divisions d ON d.code = e.banner_code LEFT JOIN units u ON u.id = e.unit_id
WHERE {where}
ORDER BY e.code
"""


# Scoped to a division and all under it (the CLI's --division, the API's caller).
EXPORT_IN_DIVISION = export_select(
    "(%(scope)s::text IS NULL OR d.code = %(scope)s OR d.league_code = %(scope)s OR d.region_code = %(scope)s)")


COUNT_IN_DIVISION = """
SELECT count(*) FROM equipment e JOIN divisions d ON d.code = e.banner_code
WHERE (%(scope)s::text IS NULL OR d.code = %(scope)s OR d.league_code = %(scope)s OR d.region_code = %(scope)s)
"""
# openpyxl is slow (docs/performance.md) and builds the whole workbook in memory: larger exports are CSV only.
XLSX_MAX_ROWS = 20_000


def count_in_division(conn: psycopg.Connection[Any], *, scope: str | None) -> int:
    row = conn.execute(COUNT_IN_DIVISION, {"scope": scope}).fetchone()
    return int(next(iter(row.values())) if isinstance(row, dict) else row[0]) if row else 0


def csv_chunks(conn: psycopg.Connection, *, scope: str | None) -> Iterator[bytes]:
    """The registry (within ``scope``) as CSV with a header, chunk by chunk as COPY produces it."""
    query = psycopg.sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(
        psycopg.sql.SQL(EXPORT_IN_DIVISION.replace("%(scope)s", "{scope}")).format(scope=psycopg.sql.Literal(scope)))
    buffer = bytearray()
    with conn.cursor().copy(query) as copy:
        for chunk in copy:  # COPY hands over about a row at a time: send ~64 KiB pieces instead
            buffer += chunk
            if len(buffer) >= 65536:
                yield bytes(buffer)
                buffer.clear()
    if buffer:
        yield bytes(buffer)


def export_csv(conn: psycopg.Connection, out: IO[bytes], *, scope: str | None) -> int:
    """Write the registry (within ``scope``) as CSV; returns the number of equipment written."""
    for chunk in csv_chunks(conn, scope=scope):
        out.write(chunk)
    return count_in_division(conn, scope=scope)


def export_xlsx(conn: psycopg.Connection[Any], out: IO[bytes], *, scope: str | None) -> int:
    """Write the registry (within ``scope``) as a one-sheet XLSX workbook; returns the rows written."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("equipment")
    sheet.append(list(COLUMNS))
    rows = 0
    with conn.cursor() as cur:
        cur.execute(EXPORT_IN_DIVISION, {"scope": scope})
        for row in _tuples(cur):
            sheet.append(["" if v is None else v for v in row])
            rows += 1
    book.save(out)
    return rows
