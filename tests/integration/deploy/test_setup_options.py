"""`safewatch setup`'s options on a real database (a private cluster: setup makes cluster-wide login roles):
the operator's certificate, a first administrator named and given a password, a rotated secret reaching the
process that uses it, and settings that are not settings refused."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bench.ingest.instances import PG_BIN, PrivatePostgres
from safewatch.install.secret_file import parse_env
from safewatch.install.units import Layout
from safewatch.registry.broker_setup import trial_certificates

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(not (PG_BIN / "initdb").exists(), reason="needs PostgreSQL server binaries (initdb)")


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with PrivatePostgres() as pg:
        yield pg.create_database("safewatch")


def setup(root: Path, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "safewatch.cli", "setup", "--root", str(root), "--no-system-user",
                           "--db-url", db_url, "--storage", "plain", *args], capture_output=True, text=True,
                          timeout=180, check=False,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)})


def test_named_administrator_operator_certificate_and_a_rotated_secret(db_url: str, tmp_path: Path) -> None:
    operator = tmp_path / "operator-tls"
    trial_certificates(operator, hostnames=["mqtt.example.org"])  # stands for the operator's own CA's files
    root = tmp_path / "host"
    first = setup(root, db_url, "--tls-from", str(operator), "--admin-username", "chief",
                  "--admin-password", "chiefs-own-password-0123")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0].endswith("first administrator chief created")  # the password is theirs
    layout = Layout(root)
    secrets = parse_env(layout.secrets.read_text(encoding="utf-8"))
    assert secrets["FIRST_ADMIN_USERNAME"] == "chief" and "FIRST_ADMIN_PASSWORD" not in secrets
    tls = layout.broker_dir / "tls"
    assert (tls / "server.crt").read_bytes() == (operator / "server.crt").read_bytes()
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT role FROM users WHERE username = 'chief'").fetchone() == ("administrator",)

    # Rotation: the operator empties a secret; the re-run makes a new one and hands it to its process only.
    before = layout.secrets.read_text(encoding="utf-8")
    layout.secrets.write_text(before.replace(f"DB_PASSWORD_API={secrets['DB_PASSWORD_API']}", "DB_PASSWORD_API="),
                              encoding="utf-8")
    again = setup(root, db_url)
    assert again.returncode == 0, again.stderr
    rotated = parse_env(layout.secrets.read_text(encoding="utf-8"))
    assert rotated["DB_PASSWORD_API"] not in ("", secrets["DB_PASSWORD_API"])
    assert {k: v for k, v in rotated.items() if k != "DB_PASSWORD_API"} == \
        {k: v for k, v in secrets.items() if k != "DB_PASSWORD_API"}
    assert rotated["DB_PASSWORD_API"] in parse_env(layout.process_env("api").read_text())["SAFEWATCH_DB__URL"]
    assert rotated["DB_PASSWORD_API"] not in layout.process_env("ingest").read_text()
    assert layout.secrets.stat().st_mode & 0o777 == 0o600


def test_a_setting_that_is_not_one_is_refused_before_anything_is_written(db_url: str, tmp_path: Path) -> None:
    done = setup(tmp_path, db_url, "--set", "MQTT_URL=mqtt://elsewhere")
    assert done.returncode != 0 and "SAFEWATCH_NAME=VALUE" in done.stderr
    assert not Layout(tmp_path).secrets.exists()
