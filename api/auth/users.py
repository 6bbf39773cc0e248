"""Creating people (CLI and demo seeding)."""

from __future__ import annotations

from typing import Any

import psycopg

from api.auth.passwords import hash_password, verify_password
from api.auth.tokens import Principal, issue_token
from safewatch.db import one_row

SELECT_PASSWORD_HASH = "SELECT password_hash FROM users WHERE username = %s"
UPSERT_USER = """
INSERT INTO users (username, password_hash, role, division_code, display_name)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role,
    division_code = EXCLUDED.division_code, display_name = EXCLUDED.display_name
RETURNING id
"""


def upsert_user(conn: psycopg.Connection[Any], username: str, password: str, role: str, division_code: str,
                display_name: str | None = None) -> int:
    # The same password again keeps its hash: re-running a seed or `create-user` does not end the person's
    # tokens (a new hash would; see schema 039).
    old = conn.execute(SELECT_PASSWORD_HASH, (username,)).fetchone()
    old_hash = None if old is None else (old["password_hash"] if isinstance(old, dict) else old[0])
    kept = old_hash if old_hash is not None and verify_password(old_hash, password) else hash_password(password)
    row = one_row(conn.execute(UPSERT_USER, (username, kept, role, division_code, display_name)))
    return int(row[0] if not isinstance(row, dict) else row["id"])


SELECT_PRINCIPAL = "SELECT id, username, role, division_code, token_version FROM users WHERE id = %s"


def token_for(conn: psycopg.Connection[Any], user_id: int, *, secret: str, ttl_s: int) -> str:
    """A token for the person as the registry has them now (tests, benches and tools; people log in)."""
    row = conn.execute(SELECT_PRINCIPAL, (user_id,)).fetchone()
    if row is None:
        raise LookupError(f"no person with id {user_id}")
    values = tuple(row.values()) if isinstance(row, dict) else tuple(row)
    return issue_token(Principal(*values), secret=secret, ttl_s=ttl_s)
