"""scripts/services leaves the host's database security alone.

Where the local PostgreSQL asks for a password, the test command must not rewrite its pg_hba.conf (that
would open a real server to every local process); it starts a private PostgreSQL of its own instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bench.ingest.instances import PrivatePostgres

ROOT = Path(__file__).resolve().parents[2]
ASKS_FOR_PASSWORDS = "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"


@pytest.fixture
def guarded_postgres() -> Iterator[PrivatePostgres]:
    """A running cluster that refuses loopback connections without a password, as a real server does."""
    server = PrivatePostgres().init()
    (server.data / "pg_hba.conf").write_text(ASKS_FOR_PASSWORDS)
    server.start()
    yield server
    server.close()


def test_a_cluster_asking_for_passwords_is_left_alone_and_a_private_one_serves_the_tests(
        guarded_postgres: PrivatePostgres) -> None:
    hba = (guarded_postgres.data / "pg_hba.conf").read_text()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(guarded_postgres.url, connect_timeout=5).close()
    env = {k: v for k, v in os.environ.items() if k != "SAFEWATCH_TEST_DB_URL"}
    env["SAFEWATCH_LOCAL_PG_URL"] = guarded_postgres.url
    # Inside the sourcing shell the tests' URL must answer; after it exits the private server is gone.
    script = 'source scripts/services >/dev/null && echo "URL=$SAFEWATCH_TEST_DB_URL" && ' \
             'psql "$SAFEWATCH_TEST_DB_URL" -Atc "select 41 + 1"'
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    url = next(line for line in lines if line.startswith("URL="))[4:]
    assert url and url != guarded_postgres.url
    assert "42" in lines
    assert (guarded_postgres.data / "pg_hba.conf").read_text() == hba
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5).close()
