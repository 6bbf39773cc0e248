"""Registry benchmark: ``python -m bench.registry [--equipment 200000] [--concurrency 8] [--requests 400]``.

A fresh database on the PostgreSQL server (created here, dropped at the end unless ``--keep``):

1. import: the generated registry (units and gateways inserted first) goes through the real importer
   (`safewatch.registry.importing.import_equipment`: read, validate every row, COPY, INSERT … SELECT,
   audit); rows/s overall and per phase, against binary-free COPY of the same rows into an unindexed
   table (the write path's ceiling in this run).
2. API: a real ``safewatch api`` process (one uvicorn worker); ``--concurrency`` asyncio clients send
   ``--requests`` requests per scenario (list, filtered list, deep cursor page, search by code,
   registration number and unit name, per-division summary). p50/p99 latency and requests/s, against
   ``/healthz`` (the HTTP floor) and the scenario's SQL run alone (the database floor) in the same run.
3. unit-name search with and without the pg_trgm index (the choice in migration 005).

Prints the machine (platform, CPUs, Python, PostgreSQL) with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import psycopg

from api.auth.users import token_for, upsert_user
from api.equipment.queries import SEARCH_EQUIPMENT, SELECT_EQUIPMENT_PAGE, SELECT_SUMMARY, encode_cursor
from safewatch.db import one_row, with_database
from safewatch.demo import free_port
from safewatch.registry.divisions import load_divisions, parse_divisions, shipped_divisions_text
from safewatch.registry.importing import COLUMNS, import_equipment
from safewatch.registry.seed import demo_registry
from safewatch.schema.migrate import migrate

SERVER_URL = os.environ.get("SAFEWATCH_BENCH_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-registry-secret-of-at-least-32-bytes"

COPY_UNITS = "COPY units (uscc, name, division_code, address, safety_manager, phone) FROM STDIN"
COPY_GATEWAYS = "COPY gateways (id, league_code, name) FROM STDIN"
CEILING_TABLE = "CREATE TEMP TABLE copy_ceiling (LIKE equipment INCLUDING DEFAULTS INCLUDING IDENTITY)"
COPY_CEILING = """
COPY copy_ceiling (code, category, variety, registration_no, banner_code, lat, lon, address, manufacturer, model,
                   manufactured_on, commissioned_on, rated, status, last_inspection_on, next_inspection_on,
                   gateway_id) FROM STDIN
"""
DROP_TRGM = "DROP INDEX IF EXISTS units_name_trgm_idx"
CREATE_TRGM = "CREATE INDEX units_name_trgm_idx ON units USING gin (name gin_trgm_ops)"


def machine(conn: psycopg.Connection) -> str:
    pg = one_row(conn.execute("SHOW server_version"))[0]
    return (f"machine: {platform.platform()}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
            f"Python {platform.python_version()}, PostgreSQL {pg} (server shared with other work)")


def registry_csv(equipment: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for e in equipment:
        row = {**e, **e["rated"]}
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in COLUMNS])
    return out.getvalue().encode()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(base: str, headers: dict[str, str], make_url: Callable[[int], str], *, requests: int,
                concurrency: int) -> tuple[list[float], float]:
    """Latencies (s) of ``requests`` GETs from ``concurrency`` clients, and the wall time."""
    latencies: list[float] = []
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as client:

        async def worker() -> None:
            for i in counter:
                started = time.perf_counter()
                response = await client.get(make_url(i))
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{make_url(i)} answered {response.status_code}: {response.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started


def sql_floor(conn: psycopg.Connection, query: str, params: dict[str, Any], runs: int = 30) -> float:
    """Median time of the scenario's SQL alone on one connection (no HTTP, no JSON)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        conn.execute(query, params).fetchall()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.registry")
    parser.add_argument("--equipment", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400, help="per scenario")
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    args = parser.parse_args()

    name = f"bench_registry_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(SERVER_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(SERVER_URL, name)
    api: subprocess.Popen[bytes] | None = None
    try:
        storage = migrate(url)
        divisions = parse_divisions(shipped_divisions_text())
        with psycopg.connect(url) as conn:
            load_divisions(conn)
            conn.commit()
            print(machine(conn))
        print(f"database {name} ({storage} storage); {args.equipment:,} equipment; concurrency {args.concurrency}; "
              f"{args.requests} requests per scenario")

        generated = demo_registry(divisions, args.equipment, seed=11)
        with psycopg.connect(url) as conn:
            with conn.cursor().copy(COPY_UNITS) as copy:
                for u in generated.units:
                    copy.write_row((u["uscc"], u["name"], u["division_code"], u["address"], u["safety_manager"],
                                    u["phone"]))
            with conn.cursor().copy(COPY_GATEWAYS) as copy:
                for g in generated.gateways:
                    copy.write_row((g["id"], g["league_code"], g["name"]))
            conn.commit()
        data = registry_csv(generated.equipment)
        print(f"\n== import: {len(generated.equipment):,} rows, {len(data) / 1e6:.1f} MB CSV "
              f"({len(generated.units):,} units, {len(generated.gateways):,} gateways registered first)")
        phases: dict[str, float] = {}
        marks = {"start": time.perf_counter()}

        def progress(phase: str, done: int, total: int) -> None:
            phases[phase] = time.perf_counter()  # the last call of a phase marks its end

        with psycopg.connect(url) as conn:
            result = import_equipment(conn, data, actor="bench", scope=None, source="bench.csv", progress=progress)
        total_s = time.perf_counter() - marks["start"]
        if not result.ok:
            raise SystemExit(f"import refused: {result.errors[:5]}")
        validate_s = phases["validate"] - marks["start"]
        write_s = phases["write"] - phases["validate"]
        rows = result.inserted
        with psycopg.connect(url) as conn:
            conn.execute(CEILING_TABLE)
            started = time.perf_counter()
            with conn.cursor().copy(COPY_CEILING) as copy:
                for e in generated.equipment:
                    copy.write_row((e["code"], e["category"], e["variety"], e["registration_no"], e["banner_code"],
                                    e["lat"], e["lon"], e["address"], e["manufacturer"], e["model"],
                                    e["manufactured_on"], e["commissioned_on"], orjson.dumps(e["rated"]).decode(),
                                    e["status"], e["last_inspection_on"], e["next_inspection_on"], e["gateway_id"]))
            ceiling_s = time.perf_counter() - started
            conn.rollback()
            conn.autocommit = True
            conn.execute("ANALYZE")
        print(f"import (read + validate + COPY + INSERT … SELECT + audit, one transaction): "
              f"{rows / total_s:,.0f} rows/s ({total_s:.1f} s)")
        print(f"  read+validate {rows / validate_s:,.0f} rows/s ({validate_s:.1f} s); write {rows / write_s:,.0f} "
              f"rows/s ({write_s:.1f} s)")
        print(f"  ceiling: COPY of the same rows into an unindexed table {rows / ceiling_s:,.0f} rows/s "
              f"({ceiling_s:.1f} s); import = {ceiling_s / total_s:.2f} x ceiling")

        with psycopg.connect(url) as conn:
            users = {key: upsert_user(conn, f"bench-{key}", "bench-password-long", role, division)
                     for key, role, division in (("region", "administrator", "150000"),
                                                 ("league", "league_inspector", "150100"),
                                                 ("banner", "banner_inspector", "150102"))}
            conn.commit()
            token = {k: token_for(conn, uid, secret=SECRET, ttl_s=3600) for k, uid in users.items()}
            codes = [r[0] for r in conn.execute("SELECT code FROM equipment ORDER BY random() LIMIT 2000")]
            regs = [r[0] for r in conn.execute("SELECT registration_no FROM equipment WHERE registration_no IS NOT NULL"
                                               " ORDER BY random() LIMIT 2000")]
            unit_names = [r[0] for r in conn.execute("SELECT name FROM units ORDER BY random() LIMIT 2000")]
            deep = one_row(conn.execute("SELECT id FROM equipment ORDER BY id OFFSET %s LIMIT 1",
                                        (args.equipment // 2,)))[0]
        port = free_port()
        env = {**os.environ, "SAFEWATCH_DB__URL": url, "SAFEWATCH_API__PORT": str(port),
               "SAFEWATCH_API__JWT_SECRET": SECRET, "SAFEWATCH_DB__POOL_MAX": str(max(4, args.concurrency)),
               "SAFEWATCH_LOG_LEVEL": "WARNING"}
        api = subprocess.Popen([sys.executable, "-m", "safewatch.cli", "api"], env=env)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)  # polling a starting process; not a measurement

        deep_cursor = encode_cursor("id", deep, deep)
        scenarios: list[tuple[str, str, Callable[[int], str], str, dict[str, Any]]] = [
            ("healthz (HTTP floor)", "region", lambda i: "/healthz", "SELECT 1", {}),
            ("list, region, 100/page", "region", lambda i: "/api/v1/equipment?limit=100",
             SELECT_EQUIPMENT_PAGE[("id", False)], dict(scope="150000", after_key=None, after_id=None, limit=100)),
            ("list, deep cursor page", "region", lambda i: f"/api/v1/equipment?limit=100&cursor={deep_cursor}",
             SELECT_EQUIPMENT_PAGE[("id", False)], dict(scope="150000", after_key=deep, after_id=deep, limit=100)),
            ("list, league, elevators by next inspection", "league",
             lambda i: "/api/v1/equipment?category=3000&sort=next_inspection_on&limit=50",
             SELECT_EQUIPMENT_PAGE[("next_inspection_on", False)],
             dict(scope="150100", category="3000", after_key=None, after_id=None, limit=50)),
            ("list, banner, offline, due before", "banner",
             lambda i: "/api/v1/equipment?online=false&inspection_due_before=2026-12-31&limit=50",
             SELECT_EQUIPMENT_PAGE[("id", False)],
             dict(scope="150102", online=False, due_before="2026-12-31", after_key=None, after_id=None, limit=50)),
            ("search, code prefix", "region", lambda i: f"/api/v1/equipment/search?q={codes[i % len(codes)][:12]}",
             SEARCH_EQUIPMENT, dict(scope="150000", prefix=codes[0][:12] + "%", contains=f"%{codes[0][:12]}%",
                                    limit=20)),
            ("search, registration number", "region",
             lambda i: f"/api/v1/equipment/search?q={regs[i % len(regs)][:9]}",
             SEARCH_EQUIPMENT, dict(scope="150000", prefix=regs[0][:9] + "%", contains=f"%{regs[0][:9]}%",
                                    limit=20)),
            ("search, unit name fragment", "region",
             lambda i: f"/api/v1/equipment/search?q={unit_names[i % len(unit_names)][2:8]}",
             SEARCH_EQUIPMENT, dict(scope="150000", prefix=unit_names[0][2:8].upper() + "%",
                                    contains=f"%{unit_names[0][2:8]}%", limit=20)),
            ("summary, region (116 divisions)", "region", lambda i: "/api/v1/equipment/summary",
             SELECT_SUMMARY, dict(scope="150000", division="150000", today="2026-11-25")),
            ("summary, banner", "banner", lambda i: "/api/v1/equipment/summary",
             SELECT_SUMMARY, dict(scope="150102", division="150102", today="2026-11-25")),
        ]
        defaults = dict(division=None, category=None, variety=None, status=None, unit=None, gateway=None,
                        due_before=None, online=None)
        print(f"\n== API at concurrency {args.concurrency} (one `safewatch api` process, one uvicorn worker), "
              f"{args.requests} requests each")
        print(f"{'scenario':45} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'SQL alone ms':>13} {'p50/SQL':>8} "
              f"{'p50/healthz':>12}")
        floor_http = 0.0
        with psycopg.connect(url) as conn:
            for label, who, make_url, query, params in scenarios:
                asyncio.run(drive(base, {"Authorization": f"Bearer {token[who]}"}, make_url, requests=20,
                                  concurrency=2))  # warm the pool and caches
                latencies, wall = asyncio.run(drive(base, {"Authorization": f"Bearer {token[who]}"}, make_url,
                                                    requests=args.requests, concurrency=args.concurrency))
                floor = sql_floor(conn, query, {**defaults, **params})
                p50 = pct(latencies, 0.5)
                floor_http = floor_http or p50  # the first scenario is /healthz
                print(f"{label:45} {p50 * 1e3:8.1f} {pct(latencies, 0.99) * 1e3:8.1f} {len(latencies) / wall:8.0f} "
                      f"{floor * 1e3:13.2f} {p50 / floor:8.1f} {p50 / floor_http:12.1f}")

            print("\n== unit-name search: pg_trgm GIN index vs none (SQL alone, median of 30, "
                  f"{len(generated.units):,} units)")
            params = {**defaults, "scope": "150000", "prefix": unit_names[1][2:8].upper() + "%",
                      "contains": f"%{unit_names[1][2:8]}%", "limit": 20}
            with_index = sql_floor(conn, SEARCH_EQUIPMENT, params)
            conn.execute(DROP_TRGM)
            without = sql_floor(conn, SEARCH_EQUIPMENT, params)
            conn.execute(CREATE_TRGM)
            conn.commit()
            print(f"with trigram index {with_index * 1e3:.2f} ms; without {without * 1e3:.2f} ms "
                  f"({without / with_index:.1f} x)")
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=30)
        if args.keep:
            print(f"kept {url}")
        else:
            with psycopg.connect(SERVER_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
