"""How often migrating a fresh TimescaleDB database fails under a concurrent refresh (migration 030's race).

Each trial creates a database, migrates it from nothing while a second session loops
``CALL refresh_continuous_aggregate('readings_1m', NULL, NULL)``, and drops it. ``--unfixed`` turns off what
fixed it (the dropped aggregates' jobs stopped first, a migration meeting a refresh tried again).
Needs TimescaleDB preloaded on SAFEWATCH_TEST_DB_URL.

    python -m bench.ingest.migration_race --trials 60 [--unfixed]
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import uuid

import psycopg

from bench.machine import brief
from safewatch.db import with_database
from safewatch.schema import migrate as migrations

REFRESH = "CALL refresh_continuous_aggregate('readings_1m', NULL, NULL)"


def trial(server: str) -> str | None:
    """One fresh database migrated under a looping refresh; the error, or None."""
    name = f"safewatch_race_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    stop = threading.Event()

    def refresh() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                try:
                    conn.execute(REFRESH)
                except psycopg.Error:
                    continue  # not there yet, or gone (a view since 030): keep pressing

    refresher = threading.Thread(target=refresh)
    refresher.start()
    try:
        migrations.migrate(url, storage="timescale")
        return None
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    finally:
        stop.set()
        refresher.join()
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--unfixed", action="store_true", help="no jobs stopped first, no retry")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.unfixed:
        migrations.DROPS_AGGREGATES.clear()
        migrations.ATTEMPTS = 1
    server = os.environ.get("SAFEWATCH_TEST_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    print(f"# {brief()}")
    failures = [error for _ in range(args.trials) if (error := trial(server)) is not None]
    for error in failures:
        print(error)
    print(f"{'unfixed' if args.unfixed else 'fixed'}: {len(failures)} of {args.trials} fresh databases failed")


if __name__ == "__main__":
    main()
