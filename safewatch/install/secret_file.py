"""The host's secrets file: strong generated secrets, made once and kept on every re-run (they are in use).

The format is what systemd's ``EnvironmentFile=`` and a shell's ``. file`` both read: ``NAME=value`` lines,
values of URL-safe characters only, so nothing needs quoting.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

SECRET_BYTES = 24  # 32 URL-safe characters, 192 random bits (as scripts/make-env)


def new_secret() -> str:
    """A random secret of URL-safe characters (safe in a URL's userinfo, a shell and an environment file)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def parse_env(text: str) -> dict[str, str]:
    """``NAME=value`` lines; blank lines and ``#`` comments skipped."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip()
    return values


def completed(existing: Mapping[str, str], wanted: Iterable[str], *, fixed: Mapping[str, str]) -> dict[str, str]:
    """``existing`` with a new secret for each ``wanted`` name it lacks (or has empty), and ``fixed`` values for
    names it lacks; an existing value is never replaced."""
    values = dict(existing)
    for name, value in fixed.items():
        values.setdefault(name, value)
    for name in wanted:
        if not values.get(name):
            values[name] = new_secret()
    return values


def render_env(values: Mapping[str, str], *, header: str) -> str:
    return "".join(f"# {line}\n" for line in header.splitlines()) + "".join(f"{k}={v}\n" for k, v in values.items())


def write_atomically(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write ``text`` atomically (a reader sees the old file or the new one); never with wider rights than ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, mode)
    tmp.replace(path)
