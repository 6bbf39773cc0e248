"""`safewatch setup` on a Debian host: secrets, database, broker files, systemd units, first administrator.

Idempotent: a re-run keeps the secrets (they are in use), migrates, applies newly registered gateways' broker
accounts and rewrites the generated files from the secrets; it never resets the first administrator's password.
The order matters: the database first (the gateways' accounts come from the registry), then the files the broker
and the units read. Nothing is started here: systemd, which this module never calls, starts the units.
"""

from __future__ import annotations

import logging
import os
import pwd
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from api.auth.bootstrap import SELECT_ACTIVE_ADMINISTRATOR, ensure_first_admin
from safewatch.db import ensure_database
from safewatch.install.secret_file import completed, parse_env, render_env, write_atomically
from safewatch.install.units import (
    BROKER_ACCOUNTS,
    DB_LOGINS,
    PROCESSES,
    STATE_DIR,
    Layout,
    broker_password_name,
    common_env,
    db_password_name,
    db_url_as,
    process_env,
    render_unit,
)
from safewatch.registry.broker import gateway_accounts
from safewatch.registry.broker_conf import (
    GATEWAYS_TLS_PORT,
    HEALTH_PORT,
    SERVICES_PORT,
    debian_dropin,
    main_conf_problems,
)
from safewatch.registry.broker_setup import password_env, service_accounts, setup_broker_dir
from safewatch.registry.divisions import load_divisions
from safewatch.schema.migrate import migrate
from safewatch.schema.roles import login_role, provision_login_roles

log = logging.getLogger(__name__)

SECRETS_HEADER = """Written by `safewatch setup`, which keeps every value on a re-run (they are in use). Mode 0600.
DB_PASSWORD_*: each process's PostgreSQL login (grafana: for your Grafana's data source, read-only).
BROKER_PASSWORD_*: the services' Mosquitto accounts. JWT_SECRET signs people's tokens.
FIRST_ADMIN_*: the first administrator, made only while no active administrator exists.
docs/deploying.md, "Rotating secrets", says how to change one."""


@dataclass(frozen=True)
class HostChoices:
    """The operator's answers (the CLI's options)."""

    root: Path
    db_url: str  # the database as its owner: migrations run as it, and it makes the processes' logins
    broker_conf: Path  # the shipped deploy/mosquitto/mosquitto.conf
    exec_start: Sequence[str]  # the command that runs `safewatch`, e.g. (python, "-m", "safewatch.cli")
    hostnames: tuple[str, ...] = ("localhost",)
    operator_tls: Path | None = None
    user: str = "safewatch"
    create_user: bool = True
    mqtt_ports: Mapping[int, int] = field(default_factory=dict)  # shipped listener port -> this host's
    tls_bind: str = ""  # the gateways' listener: every interface
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    admin_username: str | None = None  # None: FIRST_ADMIN_USERNAME from the secrets file ("admin" at first)
    admin_password: str | None = None  # None: FIRST_ADMIN_PASSWORD from the secrets file
    storage: str | None = None
    settings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SetupResult:
    layout: Layout
    written: list[Path]
    storage: str
    gateways: int
    admin_created: str | None
    warnings: list[str]


def ensure_secrets(layout: Layout, *, admin_username: str | None = None, more: Sequence[str] = ()) -> dict[str, str]:
    """The host's secrets: the existing file's, with any missing one (and any of ``more``) generated; written
    back mode 0600 when anything changed.

    The first administrator's name follows ``admin_username`` when given (it is no secret in use until that
    person exists).
    """
    existing = parse_env(layout.secrets.read_text(encoding="utf-8")) if layout.secrets.exists() else {}
    wanted = [*(db_password_name(p) for p in DB_LOGINS), *(broker_password_name(a) for a in BROKER_ACCOUNTS),
              "JWT_SECRET", *more]
    values = completed(existing, wanted, fixed={"FIRST_ADMIN_USERNAME": admin_username or "admin"})
    if admin_username:
        values["FIRST_ADMIN_USERNAME"] = admin_username
    if values != existing:
        write_atomically(layout.secrets, render_env(values, header=SECRETS_HEADER))
    return values


def ensure_system_user(name: str) -> bool:
    """The system user the units run as (no login shell, home = the state directory); True when made."""
    try:
        pwd.getpwnam(name)
        return False
    except KeyError:
        pass
    done = subprocess.run(["useradd", "--system", "--user-group", "--home-dir", STATE_DIR, "--no-create-home",
                           "--shell", "/usr/sbin/nologin", name], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"useradd {name} failed ({done.stderr.strip()}); run setup as root, or create the "
                           "user yourself and pass --no-system-user")
    return True


def broker_owner() -> tuple[int, int] | None:
    """The distribution's broker user, which Mosquitto drops to before it reads its files (when we are root)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("mosquitto")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def setup_database(choices: HostChoices, layout: Layout, secrets: Mapping[str, str]) -> tuple[str, str | None]:
    """Migrate, load the divisions, give each process its login, make the first administrator.

    The administrator's password is the operator's, else FIRST_ADMIN_PASSWORD from the secrets file, generated
    there only when an administrator is to be made (no unused password lies in the file).
    Returns (the storage, the administrator's name when made here, else None).
    """
    ensure_database(choices.db_url)
    storage = migrate(choices.db_url, storage=choices.storage)
    with psycopg.connect(choices.db_url) as conn:
        load_divisions(conn)
        provision_login_roles(conn, {p: secrets[db_password_name(p)] for p in DB_LOGINS})
        if conn.execute(SELECT_ACTIVE_ADMINISTRATOR).fetchone() is not None:
            return storage, None
        password = choices.admin_password or ensure_secrets(layout, more=["FIRST_ADMIN_PASSWORD"])[
            "FIRST_ADMIN_PASSWORD"]
        admin = ensure_first_admin(conn, username=secrets["FIRST_ADMIN_USERNAME"], password=password)
    return storage, admin


def write_units(choices: HostChoices, layout: Layout, secrets: Mapping[str, str]) -> list[Path]:
    """The shared settings, each process's secrets (0600) and its systemd unit."""
    shared = common_env(mqtt_port=choices.mqtt_ports.get(SERVICES_PORT, SERVICES_PORT), api_host=choices.api_host,
                        api_port=choices.api_port, extra=choices.settings)
    write_atomically(layout.common_env, render_env(shared, header="Written by `safewatch setup` on every run; "
                                                "put your own settings in local.env."), mode=0o644)
    written = [layout.common_env]
    for process in PROCESSES:
        url = db_url_as(choices.db_url, user=login_role(process), password=secrets[db_password_name(process)])
        env = process_env(process, db_url=url, secrets=secrets)
        write_atomically(layout.process_env(process), render_env(env, header="Written by `safewatch setup` from "
                                                             "secrets.env on every run. Mode 0600."))
        unit = render_unit(process, layout=layout, exec_start=[*choices.exec_start, process], user=choices.user)
        write_atomically(layout.unit(process), unit, mode=0o644)
        written += [layout.process_env(process), layout.unit(process)]
    return written


def write_broker(choices: HostChoices, layout: Layout, secrets: Mapping[str, str]) -> tuple[list[Path], int]:
    """The Mosquitto drop-in and its accounts, ACLs and TLS files (trial ones unless the operator gives theirs)."""
    env = {password_env(a): secrets[broker_password_name(a)] for a in BROKER_ACCOUNTS}
    accounts = service_accounts(BROKER_ACCOUNTS, (), env)
    with psycopg.connect(choices.db_url) as conn:
        gateways = gateway_accounts(conn)
    written = setup_broker_dir(layout.broker_dir, accounts=accounts + gateways, hostnames=choices.hostnames,
                               owner=broker_owner(), operator_tls=choices.operator_tls)
    text = debian_dropin(choices.broker_conf.read_text(encoding="utf-8"), files_dir=layout.broker_dir,
                         ports=choices.mqtt_ports, bind={SERVICES_PORT: "127.0.0.1", HEALTH_PORT: "127.0.0.1",
                                                         GATEWAYS_TLS_PORT: choices.tls_bind})
    header = "# Written by `safewatch setup` from deploy/mosquitto/mosquitto.conf; a re-run rewrites this file.\n"
    write_atomically(layout.mosquitto_dropin, header + text, mode=0o644)
    return [*written, layout.mosquitto_dropin], len(gateways)


def run_setup(choices: HostChoices) -> SetupResult:
    """Everything `safewatch setup` does, in order; safe to run again."""
    layout = Layout(choices.root)
    secrets = ensure_secrets(layout, admin_username=choices.admin_username)
    if choices.create_user and ensure_system_user(choices.user):
        log.info("created the system user", extra={"user": choices.user})
    storage, admin = setup_database(choices, layout, secrets)
    written = [layout.secrets, *write_units(choices, layout, secrets)]
    broker_files, gateways = write_broker(choices, layout, secrets)
    main_conf = layout.mosquitto_dropin.parent.parent / "mosquitto.conf"
    warnings = main_conf_problems(main_conf.read_text(encoding="utf-8"), conf_d=layout.mosquitto_dropin.parent) \
        if main_conf.exists() else [f"{main_conf} not found: is Debian's mosquitto package installed?"]
    return SetupResult(layout=layout, written=written + broker_files, storage=storage, gateways=gateways,
                       admin_created=admin, warnings=warnings)
