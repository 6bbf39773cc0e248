"""The shipped Mosquitto configuration, adapted to where it runs (pure text functions).

deploy/mosquitto/mosquitto.conf has two parts: the delivery settings (persistence, queue limits, session
expiry) and, after `LISTENERS_MARKER`, the locked-down listeners (services, gateways over TLS, health check)
that read the files `safewatch gateways broker-files` writes. docker-compose runs it as is. Elsewhere:

- `local_conf`: the demo and the test suite's own broker keep the delivery settings and listen on
  127.0.0.1 only, anonymous: nothing outside the machine can reach them.
- `rebased_conf`: the whole shipped file, listeners and all, with its ports and paths moved (the security
  tests' private broker, which must test exactly what ships).
- `debian_dropin`: the same as a drop-in for a Debian host's /etc/mosquitto/conf.d (`safewatch setup`), without
  the persistence lines the distribution's own mosquitto.conf already has (Mosquitto refuses them twice).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

LISTENERS_MARKER = "# --- listeners"
SHIPPED_FILES_DIR = "/mosquitto/config/safewatch/"  # passwd, acl and tls/ as docker-compose mounts them
SHIPPED_DATA_DIR = "/mosquitto/data/"
SERVICES_PORT, GATEWAYS_TLS_PORT, HEALTH_PORT = 1883, 8883, 1880
# Directives that make a listener or its security: what `local_conf` must not inherit from an older file.
_SECURITY = re.compile(r"(?m)^(listener|allow_anonymous|password_file|acl_file|per_listener_settings|"
                       r"use_username_as_clientid|cafile|capath|certfile|keyfile|tls_version|psk_file)\b.*\n?")


def delivery_settings(shipped: str) -> str:
    """Everything above the listeners: persistence, queue limits, session expiry."""
    head = shipped.split(LISTENERS_MARKER, 1)[0]
    return _SECURITY.sub("", head)


def local_conf(shipped: str, *, port: int, data_dir: Path) -> str:
    """The shipped delivery settings on one anonymous listener bound to 127.0.0.1 (the demo, the test suite)."""
    text = delivery_settings(shipped).replace(SHIPPED_DATA_DIR, f"{data_dir}/")
    return (f"{text.rstrip()}\n\n# Local only: anonymous, and bound to 127.0.0.1 so nothing off this machine "
            f"reaches it.\nlistener {port} 127.0.0.1\nallow_anonymous true\n")


def rebased_conf(shipped: str, *, files_dir: Path, data_dir: Path, ports: Mapping[int, int],
                 bind: str | Mapping[int, str] = "127.0.0.1") -> str:
    """The whole shipped file with its broker files under ``files_dir``, its data under ``data_dir`` and each
    shipped listener port ``p`` moved to ``ports[p]`` (a listener not in ``ports`` keeps its port) on ``bind``:
    one address for all, or one per shipped port (absent: 127.0.0.1; "": every interface)."""
    text = shipped.replace(SHIPPED_FILES_DIR, f"{files_dir}/").replace(SHIPPED_DATA_DIR, f"{data_dir}/")

    def move(m: re.Match[str]) -> str:
        port = int(m.group(1))
        address = bind if isinstance(bind, str) else bind.get(port, "127.0.0.1")
        return f"listener {ports.get(port, port)} {address}".rstrip()

    return re.sub(r"(?m)^listener (\d+)(?: \S+)?[ \t]*$", move, text)


# Set by Debian's /etc/mosquitto/mosquitto.conf before its `include_dir /etc/mosquitto/conf.d`.
_DISTRIBUTION_SET = re.compile(r"(?m)^(persistence|persistence_location)\b.*\n?")


def debian_dropin(shipped: str, *, files_dir: Path, ports: Mapping[int, int], bind: Mapping[int, str]) -> str:
    """The whole shipped file as a conf.d drop-in: broker files under ``files_dir``, listeners moved as in
    `rebased_conf`, persistence left to the distribution's file (same settings: on, in /var/lib/mosquitto)."""
    text = rebased_conf(shipped, files_dir=files_dir, data_dir=Path("/var/lib/mosquitto"), ports=ports, bind=bind)
    return _DISTRIBUTION_SET.sub("", text)


def main_conf_problems(main: str, *, conf_d: Path) -> list[str]:
    """What in a Debian host's own mosquitto.conf would defeat the drop-in, each with what to do; [] when none.

    The package's file only sets persistence, logging and ``include_dir /etc/mosquitto/conf.d``. A listener or
    security directive of its own would come before the drop-in's ``per_listener_settings`` (so that applies to
    none of the listeners) and might leave an anonymous port open beside the locked-down ones.
    """
    problems = []
    if not re.search(rf"(?m)^include_dir\s+{re.escape(str(conf_d).rstrip('/'))}/?\s*$", main):
        problems.append(f"mosquitto.conf does not include {conf_d}: add `include_dir {conf_d}` (as Debian's "
                        "own file has), or the broker never reads the SafeWatch listeners")
    own = sorted({m.group(1) for m in _SECURITY.finditer(main)})
    if own:
        problems.append(f"mosquitto.conf has {', '.join(own)} of its own: remove them (restore the file Debian "
                        "ships) so only the SafeWatch listeners, which refuse anonymous clients, are open")
    return problems
