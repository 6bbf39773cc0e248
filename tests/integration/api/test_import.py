"""Bulk import and export against the real database: 100,000 rows, all or nothing, every bad row named."""

from __future__ import annotations

import io
from collections.abc import Callable

import psycopg
from click.testing import CliRunner
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook

from safewatch.cli import main as cli
from safewatch.db import one_row
from safewatch.registry.importing import COLUMNS, import_equipment
from tests.integration.api.conftest import Caller, Registered

HEADER = "code,variety,unit_uscc,banner_code,gateway_id,registration_no,rated_speed,rated_load,floors," \
         "last_inspection_on,next_inspection_on"
COUNT_WITH_PREFIX = "SELECT count(*) FROM equipment WHERE code LIKE %s"
COUNT_AUDIT_WITH_PREFIX = """
SELECT count(*) FROM equipment_audit a JOIN equipment e ON e.id = a.equipment_id
WHERE e.code LIKE %s AND a.action = 'import'
"""


def elevator_rows(reg: Registered, prefix: str, n: int, start: int = 0) -> list[str]:
    """``n`` good CSV rows; codes are ``prefix`` (13 characters) + a 5-character serial."""
    return [f"{prefix}{i:05d},3110,{reg.uscc},{reg.banner},{reg.gateway_id},梯11蒙M{i:05d}(24),1.75,1000,18,"
            f"2026-01-10,2027-01-10" for i in range(start, start + n)]


def count(url: str, query: str, prefix: str) -> int:
    with psycopg.connect(url) as conn:
        return one_row(conn.execute(query, (prefix + "%",)))[0]


def test_100k_rows_import_in_one_transaction(api_db: str, register: Callable[..., Registered], client: TestClient,
                                             as_user: Callable[[str, str], Caller]) -> None:
    reg = register("152921", "152900")
    prefix = "3110152922024"
    data = "\n".join([HEADER, *elevator_rows(reg, prefix, 100_000)]).encode()
    seen: list[tuple[str, int, int]] = []
    with psycopg.connect(api_db) as conn:
        result = import_equipment(conn, data, actor="importer", scope=None, source="big.csv",
                                  progress=lambda *p: seen.append(p))
    assert (result.rows, result.inserted, result.errors_total) == (100_000, 100_000, 0)
    assert count(api_db, COUNT_WITH_PREFIX, prefix) == 100_000
    assert count(api_db, COUNT_AUDIT_WITH_PREFIX, prefix) == 100_000  # one audit entry per imported row
    assert seen[-1] == ("write", 100_000, 100_000) and ("validate", 100_000, 100_000) in seen
    # So many rows export as streamed CSV, not as an XLSX workbook built in memory.
    league = as_user("league_inspector", "152900")
    r = client.get("/api/v1/equipment/export", params={"division": reg.banner, "format": "xlsx"},
                   headers=league.headers)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "format"]
    with client.stream("GET", "/api/v1/equipment/export", params={"division": reg.banner},
                       headers=league.headers) as streamed:
        lines = sum(chunk.count(b"\n") for chunk in streamed.iter_bytes())
    assert lines == 1 + 100_000 + 1  # header, the import, and the elevator `register` made


def test_bad_rows_are_all_reported_and_nothing_is_written(api_db: str, register: Callable[..., Registered]) -> None:
    reg = register("152922", "152900")
    prefix = "3110152922023"
    rows = elevator_rows(reg, prefix, 2000)
    rows[9] = rows[9].replace(",1.75,", ",fast,")  # line 11: not a number
    rows[499] = rows[499].replace(f",{reg.banner},", ",159999,")  # line 501: unknown division
    rows[999] = rows[998]  # line 1001: the code of line 1000 again
    rows[1499] = rows[1499].replace(reg.uscc, reg.uscc[:17] + ("0" if reg.uscc[17] != "0" else "1"))  # check char
    rows[1999] = rows[1999] + ",extra"  # line 2001: one value too many
    data = "\n".join([HEADER, *rows]).encode()
    with psycopg.connect(api_db) as conn:
        result = import_equipment(conn, data, actor="importer", scope=None)
    assert not result.ok and result.inserted == 0
    assert [(e.line, e.field) for e in result.errors] == [
        (11, "rated.rated_speed"), (501, "banner_code"), (1001, "code"), (1501, "unit_uscc"), (2001, "row")]
    assert "check character" in result.errors[3].message and "line 1000" in result.errors[2].message
    assert count(api_db, COUNT_WITH_PREFIX, prefix) == 0


def test_codes_already_registered_are_refused(api_db: str, register: Callable[..., Registered]) -> None:
    reg = register("152923", "152900")
    data = "\n".join([HEADER, f"{reg.code},3110,{reg.uscc},{reg.banner},,,1.0,630,6,,"]).encode()
    with psycopg.connect(api_db) as conn:
        result = import_equipment(conn, data, actor="importer", scope=None)
    assert [(e.line, e.field, "already registered" in e.message) for e in result.errors] == [(2, "code", True)]


def test_scope_limits_the_rows(api_db: str, register: Callable[..., Registered]) -> None:
    reg = register("152923", "152900")
    data = "\n".join([HEADER, *elevator_rows(reg, "3110152922021", 3)]).encode()
    with psycopg.connect(api_db) as conn:
        result = import_equipment(conn, data, actor="importer", scope="150100")  # a Hohhot clerk
    assert {(e.field, "outside your jurisdiction" in e.message) for e in result.errors} == {("banner_code", True)}


def test_cli_import_shows_progress_and_errors(api_db: str, register: Callable[..., Registered], tmp_path) -> None:
    reg = register("152921", "152900")
    good = tmp_path / "good.csv"
    good.write_text("\n".join([HEADER, *elevator_rows(reg, "3110152922020", 12_000)]), encoding="utf-8")
    env = {"SAFEWATCH_DB__URL": api_db, "SAFEWATCH_LOG_JSON": "false"}
    run = CliRunner().invoke(cli, ["registry", "import", str(good), "--actor", "clerk-cli"], env=env)
    assert run.exit_code == 0, run.output
    assert "imported 12000 equipment" in run.output and "validate      12,000 / 12,000 rows" in run.output
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([HEADER, *elevator_rows(reg, "3110152922019", 3)]).replace("2027-01-10", "2025-01-10"),
                   encoding="utf-8")
    run = CliRunner().invoke(cli, ["registry", "import", str(bad)], env=env)
    assert run.exit_code == 1
    assert "line 2: next_inspection_on:" in run.output and "nothing was written" in run.output
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("code,colour\nx,red\n", encoding="utf-8")
    run = CliRunner().invoke(cli, ["registry", "import", str(unknown)], env=env)
    assert run.exit_code == 1 and "unknown columns ['colour']" in run.output
    out = tmp_path / "export.csv"
    run = CliRunner().invoke(cli, ["registry", "export", str(out), "--division", reg.banner], env=env)
    assert run.exit_code == 0, run.output
    exported = out.read_text(encoding="utf-8").splitlines()
    assert exported[0] == ",".join(COLUMNS) and any(line.startswith("311015292202000011,") for line in exported)


def test_api_export_then_import_round_trip(client: TestClient, register: Callable[..., Registered],
                                           as_user: Callable[[str, str], Caller]) -> None:
    reg = register("150105", "150100")
    clerk = as_user("registry_clerk", "150100")
    exported = client.get("/api/v1/equipment/export", params={"division": reg.banner}, headers=clerk.headers)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.splitlines()
    mine = next(line for line in lines if line.startswith(reg.code + ","))
    new_code = reg.code[:-5] + "99999"
    body = "\n".join([lines[0], mine.replace(reg.code, new_code, 1)]).encode()
    r = client.post("/api/v1/equipment/import", content=body, headers={**clerk.headers, "content-type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json()["inserted"] == 1
    copy = client.get(f"/api/v1/equipment/{new_code}", headers=clerk.headers).json()
    original = client.get(f"/api/v1/equipment/{reg.code}", headers=clerk.headers).json()
    for field in ("variety", "unit_uscc", "banner_code", "rated", "gateway_id", "next_inspection_on", "rescue_code"):
        assert copy[field] == original[field], field
    again = client.post("/api/v1/equipment/import", content=body, headers={**clerk.headers, "content-type": "text/csv"})
    assert again.status_code == 422
    assert again.json()["detail"][1] == {"msg": f"equipment {new_code} is already registered",
                                         "loc": ["body", 2, "code"], "type": "bad_row"}


def test_xlsx_export_and_import(client: TestClient, register: Callable[..., Registered],
                                as_user: Callable[[str, str], Caller]) -> None:
    reg = register("150105", "150100")
    clerk = as_user("registry_clerk", "150100")
    r = client.get("/api/v1/equipment/export", params={"division": reg.banner, "format": "xlsx"},
                   headers=clerk.headers)
    assert r.status_code == 200
    sheet = load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == list(COLUMNS) and any(row[0] == reg.code for row in rows[1:])
    book = Workbook()
    ws = book.worksheets[0]  # the one a new workbook has (its active sheet)
    ws.append(["code", "unit_uscc", "banner_code", "rated_pressure", "rated_evaporation", "safety_valve_low",
               "safety_valve_high", "manufactured_on"])
    ws.append([f"1100150982019{reg.code[-5:]}", reg.uscc, reg.banner, 1.25, 4, 1.3, 1.325, "2019-01-01"])
    buffer = io.BytesIO()
    book.save(buffer)
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    r = client.post("/api/v1/equipment/import", content=buffer.getvalue(),
                    headers={**clerk.headers, "content-type": xlsx})
    assert r.status_code == 200, r.text
    boiler = client.get(f"/api/v1/equipment/1100150982019{reg.code[-5:]}", headers=clerk.headers).json()
    assert (boiler["category"], boiler["rated"]["rated_pressure"]) == ("1000", 1.25)


def test_oversized_import_body_is_refused(client: TestClient, as_user: Callable[[str, str], Caller]) -> None:
    clerk = as_user("registry_clerk", "150100")
    r = client.post("/api/v1/equipment/import", content=b"x" * (300 * 1024),
                    headers={**clerk.headers, "content-type": "text/csv"})
    assert r.status_code == 413 and "body" in r.json()["detail"][0]["loc"]
