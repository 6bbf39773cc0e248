"""What `safewatch setup` writes, as text: systemd units, their environment files, the per-process database URLs.

Pure functions of the host's choices; `safewatch.install.host` writes them. Every unit reads three environment
files: ``safewatch.env`` (the host's shared settings, no secrets), ``<process>.env`` (its own database login,
broker account and, for the API, the token signing key; mode 0600) and, if present, ``local.env`` (the
operator's own settings, never written by setup, read last so it wins).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

# The long-running processes, each a unit `safewatch-<name>.service` running `safewatch <name>`.
PROCESSES: dict[str, str] = {
    "ingest": "SafeWatch ingest worker (MQTT to PostgreSQL)",
    "alerts": "SafeWatch alert worker",
    "notifier": "SafeWatch notifier (escalation timers and outbox delivery)",
    "api": "SafeWatch API and dashboard",
}
BROKER_ACCOUNTS = ("ingest", "alerts", "notifier")  # the API does not use the broker
DB_LOGINS = ("ingest", "alerts", "notifier", "api", "grafana")  # grafana: the operator's own Grafana, read-only
STATE_DIR = "/var/lib/safewatch"


@dataclass(frozen=True)
class Layout:
    """Where everything goes under ``root`` (``/`` on a host; a temporary directory in tests)."""

    root: Path

    @property
    def conf_dir(self) -> Path:
        return self.root / "etc" / "safewatch"

    @property
    def secrets(self) -> Path:
        return self.conf_dir / "secrets.env"

    @property
    def common_env(self) -> Path:
        return self.conf_dir / "safewatch.env"

    @property
    def local_env(self) -> Path:
        return self.conf_dir / "local.env"

    def process_env(self, process: str) -> Path:
        return self.conf_dir / f"{process}.env"

    def unit(self, process: str) -> Path:
        return self.root / "etc" / "systemd" / "system" / f"safewatch-{process}.service"

    @property
    def mosquitto_dropin(self) -> Path:
        return self.root / "etc" / "mosquitto" / "conf.d" / "safewatch.conf"

    @property
    def broker_dir(self) -> Path:
        return self.root / "etc" / "mosquitto" / "safewatch"


def db_password_name(process: str) -> str:
    return f"DB_PASSWORD_{process.upper()}"


def broker_password_name(account: str) -> str:
    return f"BROKER_PASSWORD_{account.upper()}"


def db_url_as(owner_url: str, *, user: str, password: str) -> str:
    """``owner_url``'s server and database, logged in as ``user`` (host, port, database and options kept)."""
    parts = urlsplit(owner_url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


def common_env(*, mqtt_port: int, api_host: str, api_port: int, extra: Mapping[str, str]) -> dict[str, str]:
    """The shared settings: the broker's internal listener on this host, the API's address, JSON logs."""
    return {"SAFEWATCH_MQTT__URL": f"mqtt://127.0.0.1:{mqtt_port}", "SAFEWATCH_API__HOST": api_host,
            "SAFEWATCH_API__PORT": str(api_port), "SAFEWATCH_LOG_JSON": "true", **extra}


def process_env(process: str, *, db_url: str, secrets: Mapping[str, str]) -> dict[str, str]:
    """One process's own secrets: its database login, its broker account, the API's signing key."""
    values = {"SAFEWATCH_DB__URL": db_url}
    if process in BROKER_ACCOUNTS:
        values["SAFEWATCH_MQTT__USERNAME"] = process
        values["SAFEWATCH_MQTT__PASSWORD"] = secrets[broker_password_name(process)]
    if process == "api":
        values["SAFEWATCH_API__JWT_SECRET"] = secrets["JWT_SECRET"]
    return values


def render_unit(process: str, *, layout: Layout, exec_start: Sequence[str], user: str) -> str:
    """A hardened systemd service for ``process``: restarted on failure, stopped with SIGTERM (workers finish the
    batch in hand and acknowledge it), writing nothing outside its state directory."""
    return f"""\
# Written by `safewatch setup`; re-running it rewrites this file. Your settings: {layout.local_env}
[Unit]
Description={PROCESSES[process]}
Wants=network-online.target
After=network-online.target postgresql.service mosquitto.service

[Service]
Type=simple
User={user}
Group={user}
EnvironmentFile={layout.common_env}
EnvironmentFile={layout.process_env(process)}
EnvironmentFile=-{layout.local_env}
ExecStart={shlex.join(exec_start)}
WorkingDirectory={STATE_DIR}
StateDirectory=safewatch
Restart=always
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec=60
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK

[Install]
WantedBy=multi-user.target
"""
