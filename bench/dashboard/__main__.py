"""Overview page load with a large registry, in the real browser: ``python -m bench.dashboard``.

1. Creates a fresh database on the PostgreSQL at SAFEWATCH_BENCH_DB_URL (default the local server),
   migrates it and loads ``--equipment`` generated equipment (default 200,000) with COPY.
2. Starts the real API process (``python -m safewatch.cli api``) on a free port.
3. Drives headless Chromium (Playwright, /usr/bin/chromium) through ``--runs`` navigations of the
   overview, each in a fresh browser context already holding a token, and measures navigation start →
   overview rendered (tiles, jurisdiction tree and map drawn from the API's data; the page records
   ``performance.now()`` at that moment).
4. Prints the figures, their ratio to the 1 s limit, and the machine; drops the database unless --keep.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg

from api.auth.users import upsert_user
from api.dashboard.overview import REGISTRY_TTL_S, count_registry
from bench.dashboard.load import load_registry
from safewatch.db import one_row, with_database
from safewatch.registry.divisions import load_divisions
from safewatch.schema.migrate import migrate

LIMIT_S = 1.0
CHROMIUM = os.environ.get("SAFEWATCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
RESULTS = Path(__file__).resolve().parents[1] / "results"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Return once the API answers /healthz (it says it is up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode} before answering")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the API did not answer within {timeout} s")
        time.sleep(0.1)


def _machine(url: str) -> str:
    cpu = "unknown cpu"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with psycopg.connect(url) as conn:
        pg = one_row(conn.execute("SHOW server_version"))[0]
        ts = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        storage = one_row(conn.execute("SELECT value FROM safewatch_meta WHERE key = 'storage'"))[0]
    chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    from importlib.metadata import version
    return (f"machine: {platform.platform()}; {cpu}; {os.cpu_count()} CPUs; python {platform.python_version()}; "
            f"PostgreSQL {pg}; storage {storage}{' (TimescaleDB ' + ts[0] + ')' if ts else ''}; {chromium}; "
            f"playwright {version('playwright')}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
            "(other work on the machine at the end of the run)")


def _measure(base: str, token: str, runs: int) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(runs):
            ctx = browser.new_context(viewport={"width": 1366, "height": 768})
            ctx.add_init_script(f"sessionStorage.setItem('sw_token', {token!r})")
            page = ctx.new_page()
            page.goto(base + "/#/overview")
            page.wait_for_function("window.__overviewRenderedAt !== undefined", timeout=60_000)
            out.append(page.evaluate("""() => {
                const res = n => performance.getEntriesByType('resource').find(r => r.name.includes(n));
                const span = r => r ? Math.round(r.responseEnd - r.startTime) : null;
                return { rendered_ms: Math.round(window.__overviewRenderedAt),
                         me_ms: span(res('/api/v1/me')), overview_ms: span(res('/api/v1/dashboard/overview')),
                         overview_bytes: res('/api/v1/dashboard/overview')?.encodedBodySize ?? null,
                         cells: document.querySelectorAll('#map circle.cell').length,
                         tree_rows: document.querySelectorAll('#tree tr[data-code]').length,
                         equipment_tile: document.querySelector('[data-tile=equipment] .v').textContent };
            }"""))
            ctx.close()
        browser.close()
    return out


def _registry_pass_ms(url: str, repeats: int = 3) -> str:
    took = []
    with psycopg.connect(url) as conn:
        for _ in range(repeats):
            started = time.perf_counter()
            count_registry(conn)
            took.append((time.perf_counter() - started) * 1000)
    return ", ".join(f"{t:.0f} ms" for t in took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--equipment", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=11, help="navigations; the first is reported as cold")
    parser.add_argument("--storage", choices=["plain", "timescale"], default=None)
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    args = parser.parse_args()

    admin_url = os.environ.get("SAFEWATCH_BENCH_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"safewatch_bench_dashboard_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin_url, name)
    api: subprocess.Popen[bytes] | None = None
    try:
        migrate(url, storage=args.storage)
        with psycopg.connect(url) as conn:
            load_divisions(conn)
        started = time.perf_counter()
        loaded = load_registry(url, args.equipment)
        print(f"loaded {loaded} in {time.perf_counter() - started:.1f} s")
        with psycopg.connect(url) as conn:
            upsert_user(conn, "bench-region", "bench-pw", "region_inspector", "150000")

        port = _free_port()
        env = {**os.environ, "SAFEWATCH_DB__URL": url, "SAFEWATCH_API__PORT": str(port),
               "SAFEWATCH_API__JWT_SECRET": uuid.uuid4().hex + uuid.uuid4().hex, "SAFEWATCH_LOG_LEVEL": "WARNING"}
        RESULTS.mkdir(parents=True, exist_ok=True)
        api_log = RESULTS / "dashboard-api.log"
        with api_log.open("wb") as log_file:
            api = subprocess.Popen([sys.executable, "-m", "safewatch.cli", "api"], env=env, stderr=log_file)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_http(base, api)
        except (RuntimeError, TimeoutError):
            print(api_log.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        token = httpx.post(base + "/api/v1/auth/token", data={"username": "bench-region", "password": "bench-pw"},
                           timeout=10).json()["access_token"]

        runs = _measure(base, token, args.runs)
        cold, warm = runs[0], runs[1:] or runs
        rendered = sorted(r["rendered_ms"] for r in warm)
        median = statistics.median(rendered)
        p90 = rendered[min(len(rendered) - 1, round(0.9 * (len(rendered) - 1)))]
        print(f"overview page, {loaded['equipment']:,} equipment, region scope "
              f"(tree rows {cold['tree_rows']}, map cells {cold['cells']}, "
              f"overview payload {cold['overview_bytes']} B, "
              f"equipment tile {cold['equipment_tile']})")
        print(f"  cold (first navigation after API start): {cold['rendered_ms']} ms "
              f"(of which GET /api/v1/dashboard/overview {cold['overview_ms']} ms)")
        api_median = statistics.median(r["overview_ms"] for r in warm)
        print(f"  warm, {len(warm)} navigations: median {median:.0f} ms, p90 {p90} ms, max {rendered[-1]} ms; "
              f"of which GET /api/v1/dashboard/overview median {api_median:.0f} ms")
        print(f"  limit {LIMIT_S * 1000:.0f} ms: cold {cold['rendered_ms'] / (LIMIT_S * 1000):.2f} × limit, "
              f"warm median {median / (LIMIT_S * 1000):.2f} × limit, max {rendered[-1] / (LIMIT_S * 1000):.2f} × limit")
        print(f"  registry pass behind the counts (kept by the API, re-taken in the background every "
              f"{REGISTRY_TTL_S:.0f} s; a request waits for it only before the first pass is done): "
              f"{_registry_pass_ms(url)}")
        print(_machine(url))
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=20)
        if args.keep:
            print(f"database kept: {url}")
        else:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
