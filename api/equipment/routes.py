"""Equipment endpoints: list, search, summary, read, create, update, retire, audit, import, export.

Every read is limited to the caller's division and what lies under it; a code outside it is a 404
(we do not say whether it exists). Writes need a registry role and a target inside the jurisdiction.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any, Literal

import orjson
import psycopg
from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from psycopg.rows import DictRow
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.deps import WRITE_REGISTRY, Conn, CurrentUser, require
from api.equipment import queries as q
from api.equipment.models import (
    AuditEntry,
    DivisionSummary,
    EquipmentCreate,
    EquipmentPage,
    EquipmentRead,
    EquipmentUpdate,
    ImportReport,
    RetireBody,
)
from api.equipment.problems import division_in_scope, raise_problems, raise_validation
from api.errors import NotFound, responses
from safewatch.db import one_row
from safewatch.registry import importing
from safewatch.registry.records import EquipmentRecord, IsoDate, changes, reference_problems

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/equipment", tags=["equipment"])

DivisionCode = Annotated[str | None, Query(pattern=r"^\d{6}$", description="region, league or banner code")]
EquipmentCode = Annotated[str, Path(pattern=r"^[0-9A-Za-z]{1,32}$", description="设备代码 or 注册代码")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _read(row: dict[str, Any]) -> EquipmentRead:
    return EquipmentRead(**row)


def _get_or_404(conn: psycopg.Connection[DictRow], scope: str, code: str) -> dict[str, Any]:
    row = q.get_equipment(conn, scope=scope, code=code.upper())
    if row is None:
        raise NotFound(f"equipment {code} is not in your jurisdiction's registry", ["path", "code"])
    return row


def _for_update(conn: psycopg.Connection[DictRow], scope: str, code: str) -> dict[str, Any]:
    """The equipment's row, locked until the transaction ends; 404 when it is not in the caller's jurisdiction."""
    row = conn.execute(q.SELECT_FOR_UPDATE, {"scope": scope, "code": code.upper()}).fetchone()
    if row is None:
        raise NotFound(f"equipment {code} is not in your jurisdiction's registry", ["path", "code"])
    return row


@router.get("", response_model=EquipmentPage)
def list_(conn: Conn, user: CurrentUser, division: DivisionCode = None,
          category: Annotated[str | None, Query(pattern=r"^[123]000$")] = None,
          variety: Annotated[str | None, Query(pattern=r"^[1-9][0-9A-Z]{3}$")] = None,
          status: Annotated[Literal["in_use", "suspended", "scrapped", "cancelled"] | None, Query()] = None,
          unit: Annotated[str | None, Query(pattern=r"^[0-9A-HJ-NP-RT-UW-Y]{18}$", description="unit USCC")] = None,
          gateway: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = None,
          inspection_due_before: Annotated[IsoDate | None, Query(description="next inspection before this day")] = None,
          online: Annotated[bool | None, Query(description="its gateway's last status is online")] = None,
          sort: Annotated[Literal["id", "code", "next_inspection_on", "updated_at",
                                  "-id", "-code", "-next_inspection_on", "-updated_at"], Query()] = "id",
          cursor: Annotated[str | None, Query(max_length=256)] = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> EquipmentPage:
    key = sort.lstrip("-")
    after_key, after_id = q.decode_cursor(cursor, sort=key)
    rows = q.list_equipment(conn, sort=key, descending=sort.startswith("-"), scope=user.division_code,
                            division=division, category=category, variety=variety, status=status, unit=unit,
                            gateway=gateway, due_before=inspection_due_before, online=online,
                            after_key=after_key, after_id=after_id, limit=limit)
    items = [_read(r) for r in rows]
    next_cursor = q.encode_cursor(key, q.cursor_key(rows[-1], key), rows[-1]["id"]) if len(rows) == limit else None
    return EquipmentPage(items=items, next_cursor=next_cursor)


@router.get("/search", response_model=list[EquipmentRead])
def search(conn: Conn, user: CurrentUser,
           q_: Annotated[str, Query(alias="q", min_length=2, max_length=64, pattern=r"^[^\x00-\x1f]+$",
                                    description="prefix of a code or registration number, or part of a unit name")],
           limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[EquipmentRead]:
    return [_read(r) for r in q.search_equipment(conn, scope=user.division_code, q=q_.strip(), limit=limit)]


@router.get("/summary", response_model=list[DivisionSummary])
def summary(conn: Conn, user: CurrentUser, division: DivisionCode = None,
            today: Annotated[IsoDate | None, Query(description="for overdue counts; default: server's date")] = None,
            ) -> list[DivisionSummary]:
    """Counts for ``division`` (default: yours) and every division under it, each rolled up."""
    rows = q.summary(conn, scope=user.division_code, division=division or user.division_code,
                     today=today or date.today())
    return [DivisionSummary(**r) for r in rows]


@router.get("/export", response_class=Response,
            responses={200: {"content": {"text/csv": {}, XLSX: {}}, "description": "the registry file"},
                       **responses(404)})
def export(request: Request, conn: Conn, user: CurrentUser, division: DivisionCode = None,
           format: Annotated[Literal["csv", "xlsx"], Query()] = "csv") -> Response:
    """The registry within your jurisdiction (or ``division`` under it) in the import's column layout.

    CSV is streamed as the database produces it; XLSX is limited to `XLSX_MAX_ROWS` equipment.
    """
    scope = user.division_code
    if division is not None and not division_in_scope(conn, scope=scope, code=division):
        raise NotFound(f"division {division} is not within your jurisdiction", ["query", "division"])
    target = division or scope
    headers = {"Content-Disposition": f'attachment; filename="equipment.{format}"'}
    if format == "xlsx":
        rows = importing.count_in_division(conn, scope=target)
        if rows > importing.XLSX_MAX_ROWS:
            raise HTTPException(422, detail=[{"msg": f"{rows} equipment is over the XLSX limit of "
                                              f"{importing.XLSX_MAX_ROWS}; use format=csv or a narrower division",
                                              "loc": ["query", "format"], "type": "too_large"}])
        buffer = io.BytesIO()
        importing.export_xlsx(conn, buffer, scope=target)
        return Response(buffer.getvalue(), media_type=XLSX, headers=headers)

    def chunks() -> Iterator[bytes]:
        # Its own connection: the request's is returned to the pool before the body is streamed.
        with request.app.state.pool.connection() as stream_conn:
            yield from importing.csv_chunks(stream_conn, scope=target)

    return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8", headers=headers)


@router.post("/import", responses=responses(409, 413),
             response_model=ImportReport, dependencies=[require(*WRITE_REGISTRY)],
             openapi_extra={"requestBody": {"required": True, "content": {
                 "text/csv": {"schema": {"type": "string"}},
                 XLSX: {"schema": {"type": "string", "format": "binary"}}}}})
async def import_(request: Request, user: CurrentUser) -> ImportReport:
    """Import a CSV or XLSX file (the export's columns): every row written, or none and every bad row listed.

    Bodies are capped by the API's body limit; import larger files with `safewatch registry import FILE`.
    """
    data = await request.body()
    if not data:
        raise HTTPException(422, detail=[{"msg": "empty body; send the CSV or XLSX file as the request body",
                                          "loc": ["body"], "type": "missing"}])
    filename = "upload.xlsx" if request.headers.get("content-type", "").startswith(XLSX) else "upload.csv"

    def run() -> importing.ImportResult:
        with request.app.state.pool.connection() as conn:
            return importing.import_equipment(conn, data, actor=user.username, scope=user.division_code,
                                              source=filename)

    try:
        result = await run_in_threadpool(run)
    except importing.ImportFormatError as exc:
        raise HTTPException(422, detail=[{"msg": str(exc), "loc": ["body"], "type": "bad_file"}]) from None
    except psycopg.errors.UniqueViolation:
        raise HTTPException(409, detail=[{"msg": "another change registered one of these codes during the import; "
                                          "nothing was written: import the file again", "loc": ["body"],
                                          "type": "duplicate"}]) from None
    if not result.ok:
        head = {"msg": f"{result.errors_total} problems in {result.rows} rows; nothing was written. Fix the rows "
                       "listed (loc: body, line, field) and import the whole file again",
                "loc": ["body"], "type": "import_refused"}
        # Rows outside the caller's jurisdiction make it a 403: no edit of those rows can make them acceptable.
        status = 403 if any(e.kind == "forbidden" for e in result.errors) else 422
        raise HTTPException(status, detail=[head, *({"msg": e.message, "loc": ["body", e.line, e.field],
                                                     "type": "bad_row"} for e in result.errors[:1000])])
    return ImportReport(rows=result.rows, inserted=result.inserted, committed=True, errors_total=0, errors=[])


@router.post("", responses=responses(409),
             response_model=EquipmentRead, status_code=201, dependencies=[require(*WRITE_REGISTRY)])
def create(body: EquipmentCreate, conn: Conn, user: CurrentUser) -> EquipmentRead:
    with conn.transaction():
        refs = q.references_for(conn, scope=user.division_code, banner_code=body.banner_code,
                                unit_uscc=body.unit_uscc, gateway_id=body.gateway_id, code=body.code)
        raise_problems(reference_problems(body, refs))
        values = _row_values(body)
        try:
            with conn.transaction():
                row = one_row(conn.execute(q.INSERT_EQUIPMENT, values))
        except psycopg.errors.UniqueViolation:
            raise HTTPException(409, detail=[{"msg": f"equipment {body.code} is already registered",
                                              "loc": ["body", "code"], "type": "duplicate"}]) from None
        snapshot = {k: v for k, v in body.model_dump(mode="json").items() if v is not None}
        conn.execute(q.INSERT_AUDIT, (row["id"], user.username, "create", orjson.dumps(snapshot).decode()))
    log.info("equipment registered", extra={"code": body.code, "actor": user.username})
    return _read(_get_or_404(conn, user.division_code, body.code))


@router.get("/{code}", response_model=EquipmentRead)
def get(code: EquipmentCode, conn: Conn, user: CurrentUser) -> EquipmentRead:
    return _read(_get_or_404(conn, user.division_code, code))


@router.get("/{code}/audit", response_model=list[AuditEntry])
def audit(code: EquipmentCode, conn: Conn, user: CurrentUser) -> list[AuditEntry]:
    """Every change to this equipment: who, when, what (old and new values)."""
    row = _get_or_404(conn, user.division_code, code)
    return [AuditEntry(**a) for a in q.audit_of(conn, row["id"])]


@router.patch("/{code}", responses=responses(409),
              response_model=EquipmentRead, dependencies=[require(*WRITE_REGISTRY)])
def update(code: EquipmentCode, body: Annotated[EquipmentUpdate, Body()], conn: Conn,
           user: CurrentUser) -> EquipmentRead:
    with conn.transaction():
        current = _for_update(conn, user.division_code, code)
        if current["status"] in ("scrapped", "cancelled"):
            raise HTTPException(409, detail=[{"msg": f"equipment {code} is {current['status']}; a retired record "
                                              "is kept as it was", "loc": ["path", "code"], "type": "retired"}])
        patch = body.model_dump(exclude_unset=True)
        reason = patch.pop("reason", None)
        before = {k: v for k, v in current.items() if k != "id"}
        merged = {**before, **patch}
        if "variety" in patch:
            merged["category"] = None  # follows from the new variety
        try:
            record = EquipmentRecord.model_validate(merged)
        except ValidationError as exc:
            raise_validation(exc)
            raise  # unreachable: raise_validation always raises
        refs = q.references_for(conn, scope=user.division_code, banner_code=record.banner_code,
                                unit_uscc=record.unit_uscc, gateway_id=record.gateway_id, code=record.code)
        raise_problems(reference_problems(record, refs, check_code=False))
        after = record.model_dump()
        diff = changes(before, after)
        if diff:
            conn.execute(q.UPDATE_EQUIPMENT, {**_row_values(record), "id": current["id"]})
            entry = {**diff, **({"reason": reason} if reason else {})}
            conn.execute(q.INSERT_AUDIT, (current["id"], user.username, "update", orjson.dumps(entry).decode()))
    return _read(_get_or_404(conn, user.division_code, code))


@router.post("/{code}/retire", responses=responses(409),
             response_model=EquipmentRead, dependencies=[require(*WRITE_REGISTRY)])
def retire(code: EquipmentCode, body: RetireBody, conn: Conn, user: CurrentUser) -> EquipmentRead:
    """Scrap (报废) or cancel (注销) the registration; the record stays, read-only, with its audit trail."""
    with conn.transaction():
        current = _for_update(conn, user.division_code, code)
        if current["status"] in ("scrapped", "cancelled"):
            raise HTTPException(409, detail=[{"msg": f"equipment {code} is already {current['status']}",
                                              "loc": ["path", "code"], "type": "retired"}])
        conn.execute(q.RETIRE_EQUIPMENT, {"status": body.status, "id": current["id"]})
        conn.execute(q.INSERT_AUDIT, (current["id"], user.username, "retire", orjson.dumps(
            {"status": [current["status"], body.status], "reason": body.reason}).decode()))
    return _read(_get_or_404(conn, user.division_code, code))


def _row_values(record: EquipmentRecord) -> dict[str, Any]:
    values = record.model_dump()
    values["rated"] = orjson.dumps(values["rated"]).decode()
    values["status"] = str(values["status"])
    return values
