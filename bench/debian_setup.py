"""How long `safewatch setup` takes on a fresh database and on a re-run (docs/decisions/debian-setup.md).

    python -m bench.debian_setup [--runs 3]

A private PostgreSQL cluster (initdb, as the fault tests start one) with an owner that is no superuser, as
docs/deploying.md has the operator make; setup writes under a temporary root, makes no system user, plain storage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.ingest.instances import PrivatePostgres
from bench.machine import brief

REPO = Path(__file__).resolve().parents[1]
OWNER_PASSWORD = "bench-owner-password"  # a throw-away cluster on loopback


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="setup runs on one database: the first, then re-runs")
    args = parser.parse_args(argv)
    print(brief())
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)}
    root = Path(tempfile.mkdtemp(prefix="sw-bench-setup-"))
    try:
        with PrivatePostgres() as pg:
            with psycopg.connect(pg.url, autocommit=True) as admin:
                admin.execute(f"CREATE ROLE safewatch LOGIN CREATEROLE PASSWORD '{OWNER_PASSWORD}'")
                admin.execute("CREATE DATABASE safewatch OWNER safewatch")
            url = f"postgresql://safewatch:{OWNER_PASSWORD}@127.0.0.1:{pg.port}/safewatch"
            for run in range(1, args.runs + 1):
                started = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "safewatch.cli", "setup", "--root", str(root),
                                       "--no-system-user", "--db-url", url, "--storage", "plain"],
                                      capture_output=True, text=True, env=env, check=False)
                elapsed = time.perf_counter() - started
                if done.returncode != 0:
                    raise SystemExit(f"setup failed: {done.stderr.strip()[-800:]}")
                print(f"run {run} ({'fresh database' if run == 1 else 're-run'}): {elapsed:.1f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
