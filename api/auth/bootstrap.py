"""The first administrator of a fresh installation, from the operator's secrets (docker-compose's `first-admin`).

Idempotent and harmless to re-run: it creates the administrator only while no active one exists, so a
restart never resets a password someone has since changed, nor ends their tokens. Later people are made
by that administrator, in the dashboard or the API.
"""

from __future__ import annotations

from typing import Any

import click
import psycopg

from api.auth.users import upsert_user

MIN_PASSWORD = 12
REGION_CODE = "150000"  # 内蒙古自治区: an administrator's jurisdiction is the whole region
SELECT_ACTIVE_ADMINISTRATOR = ("SELECT username FROM users WHERE role = 'administrator' AND retired_at IS NULL "
                               "ORDER BY id LIMIT 1")
SELECT_USER = "SELECT retired_at IS NOT NULL AS retired FROM users WHERE username = %s"


def ensure_first_admin(conn: psycopg.Connection[Any], *, username: str, password: str,
                       division: str = REGION_CODE) -> str | None:
    """Create ``username`` as an administrator unless an active one exists; its name when made, else None."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the first administrator's password is shorter than {MIN_PASSWORD} characters; "
                         "use a generated one (scripts/make-env)")
    with conn.transaction():
        conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")  # two starts at once make one administrator
        if conn.execute(SELECT_ACTIVE_ADMINISTRATOR).fetchone() is not None:
            return None
        existing = conn.execute(SELECT_USER, (username,)).fetchone()
        if existing is not None and (existing["retired"] if isinstance(existing, dict) else existing[0]):
            raise ValueError(f"{username} is a retired person; name another first administrator "
                             "(FIRST_ADMIN_USERNAME)")
        upsert_user(conn, username, password, "administrator", division)
    return username


@click.command("first-admin")
@click.option("--username", envvar="FIRST_ADMIN_USERNAME", default="admin", show_default=True,
              help="Login name (or FIRST_ADMIN_USERNAME).")
@click.option("--password", envvar="FIRST_ADMIN_PASSWORD", required=True, show_envvar=True,
              help="Read from FIRST_ADMIN_PASSWORD, so it is not on a command line.")
@click.option("--division", default=REGION_CODE, show_default=True, help="The administrator's jurisdiction.")
def first_admin_cmd(username: str, password: str, division: str) -> None:
    """Create the first administrator unless an active one exists (idempotent)."""
    from safewatch.settings import Settings

    try:
        with psycopg.connect(Settings().db.url) as conn:
            made = ensure_first_admin(conn, username=username, password=password, division=division)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"first administrator {made} created" if made else "an active administrator exists; nothing to do")


if __name__ == "__main__":
    first_admin_cmd()
