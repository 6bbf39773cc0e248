"""What `safewatch setup` writes (pure): secrets kept on a re-run, per-process database URLs, the units."""

from __future__ import annotations

import shlex
from pathlib import Path

from safewatch.install.host import ensure_system_user
from safewatch.install.secret_file import completed, parse_env, render_env, write_atomically
from safewatch.install.units import (
    BROKER_ACCOUNTS,
    PROCESSES,
    Layout,
    common_env,
    db_url_as,
    process_env,
    render_unit,
)


def test_existing_secrets_are_kept_and_only_missing_ones_generated() -> None:
    first = completed({}, ["A", "B"], fixed={"FIRST_ADMIN_USERNAME": "admin"})
    assert len(first["A"]) >= 32 and first["A"] != first["B"]
    again = completed(first, ["A", "B", "C"], fixed={"FIRST_ADMIN_USERNAME": "chief"})
    assert {k: again[k] for k in first} == first  # nothing in use is replaced, not even the admin's name
    assert again["C"] and again["C"] not in first.values()
    assert completed({"A": ""}, ["A"], fixed={})["A"]  # an emptied value is regenerated


def test_the_env_format_round_trips_and_the_file_is_private(tmp_path: Path) -> None:
    values = {"DB_PASSWORD_INGEST": "abc-_123", "FIRST_ADMIN_USERNAME": "admin"}
    path = tmp_path / "etc" / "secrets.env"
    write_atomically(path, render_env(values, header="two\nlines"))
    assert parse_env(path.read_text(encoding="utf-8")) == values
    assert path.stat().st_mode & 0o777 == 0o600


def test_each_process_logs_in_as_itself_on_the_owners_server_and_database() -> None:
    owner = "postgresql://safewatch:owner%40pw@db.example.org:5433/safewatch?sslmode=require"
    assert db_url_as(owner, user="safewatch_ingest_login", password="p/w") == \
        "postgresql://safewatch_ingest_login:p%2Fw@db.example.org:5433/safewatch?sslmode=require"
    socket = "postgresql:///safewatch?host=/var/run/postgresql"
    assert db_url_as(socket, user="u", password="p") == "postgresql://u:p@/safewatch?host=/var/run/postgresql"


def test_only_the_workers_get_a_broker_account_and_only_the_api_the_signing_key() -> None:
    secrets = {"BROKER_PASSWORD_INGEST": "i", "BROKER_PASSWORD_ALERTS": "a", "BROKER_PASSWORD_NOTIFIER": "n",
               "JWT_SECRET": "j"}
    for process in PROCESSES:
        env = process_env(process, db_url="postgresql://x", secrets=secrets)
        assert ("SAFEWATCH_MQTT__PASSWORD" in env) == (process in BROKER_ACCOUNTS)
        assert ("SAFEWATCH_API__JWT_SECRET" in env) == (process == "api")
    assert common_env(mqtt_port=1883, api_host="127.0.0.1", api_port=8000, extra={"SAFEWATCH_X": "1"}) == {
        "SAFEWATCH_MQTT__URL": "mqtt://127.0.0.1:1883", "SAFEWATCH_API__HOST": "127.0.0.1",
        "SAFEWATCH_API__PORT": "8000", "SAFEWATCH_LOG_JSON": "true", "SAFEWATCH_X": "1"}


def test_a_unit_runs_its_command_as_the_user_with_its_files_in_order() -> None:
    layout = Layout(Path("/"))
    text = render_unit("ingest", layout=layout, exec_start=["/opt/safewatch/bin/python", "-m", "safewatch.cli",
                                                            "ingest"], user="safewatch")
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("EnvironmentFile=")] == [
        "EnvironmentFile=/etc/safewatch/safewatch.env", "EnvironmentFile=/etc/safewatch/ingest.env",
        "EnvironmentFile=-/etc/safewatch/local.env"]
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    assert shlex.split(exec_start.partition("=")[2]) == ["/opt/safewatch/bin/python", "-m", "safewatch.cli", "ingest"]
    assert {"User=safewatch", "Group=safewatch", "Restart=always", "KillSignal=SIGTERM", "NoNewPrivileges=yes",
            "ProtectSystem=strict", "WantedBy=multi-user.target"} <= set(lines)
    assert layout.unit("api") == Path("/etc/systemd/system/safewatch-api.service")


def test_an_existing_system_user_is_left_as_it_is() -> None:
    assert ensure_system_user("root") is False
