"""Creating people (CLI and demo seeding)."""

from __future__ import annotations

import psycopg

from api.auth.passwords import hash_password

UPSERT_USER = """
INSERT INTO users (username, password_hash, role, division_code, display_name)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role,
    division_code = EXCLUDED.division_code, display_name = EXCLUDED.display_name
RETURNING id
"""


def upsert_user(conn: psycopg.Connection, username: str, password: str, role: str, division_code: str,
                display_name: str | None = None) -> int:
    row = conn.execute(UPSERT_USER, (username, hash_password(password), role, division_code, display_name)).fetchone()
    return int(row[0] if not isinstance(row, dict) else row["id"])
