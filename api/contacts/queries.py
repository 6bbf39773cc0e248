"""SQL of contacts and their channels."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow

from api.deps import IN_SCOPE

_CONTACT = """
c.id, c.division_code, c.name, c.kind, c.on_duty, c.categories, c.min_severity, c.created_at, c.updated_at,
coalesce((SELECT jsonb_agg(jsonb_build_object('id', ch.id, 'channel', ch.channel, 'address', ch.address,
                                              'template', ch.template) ORDER BY ch.id)
          FROM contact_channels ch WHERE ch.contact_id = c.id), '[]') AS channels
"""
SELECT_CONTACTS = f"""
SELECT {_CONTACT} FROM contacts c JOIN divisions d ON d.code = c.division_code
WHERE {IN_SCOPE}
  AND (%(division)s::text IS NULL OR c.division_code = %(division)s)
  AND (%(on_duty)s::boolean IS NULL OR c.on_duty = %(on_duty)s)
ORDER BY c.division_code, c.id
"""
SELECT_CONTACT = f"SELECT {_CONTACT} FROM contacts c JOIN divisions d ON d.code = c.division_code " \
                 f"WHERE {IN_SCOPE} AND c.id = %(id)s"
DIVISION_IN_SCOPE = f"SELECT 1 FROM divisions d WHERE d.code = %(code)s AND {IN_SCOPE}"
DIVISION_EXISTS = "SELECT 1 FROM divisions WHERE code = %s"
INSERT_CONTACT = """
INSERT INTO contacts (division_code, name, kind, on_duty, categories, min_severity)
VALUES (%(division_code)s, %(name)s, %(kind)s, %(on_duty)s, %(categories)s, %(min_severity)s) RETURNING id
"""
UPDATE_CONTACT = """
UPDATE contacts SET division_code = %(division_code)s, name = %(name)s, kind = %(kind)s, on_duty = %(on_duty)s,
    categories = %(categories)s, min_severity = %(min_severity)s, updated_at = now()
WHERE id = %(id)s
"""
SET_DUTY = "UPDATE contacts SET on_duty = %s, updated_at = now() WHERE id = %s"
DELETE_CHANNELS = "DELETE FROM contact_channels WHERE contact_id = %s"
INSERT_CHANNEL = "INSERT INTO contact_channels (contact_id, channel, address, template) VALUES (%s, %s, %s, %s)"
DELETE_CONTACT = "DELETE FROM contacts WHERE id = %s"


def list_contacts(conn: psycopg.Connection[DictRow], **params: Any) -> list[dict[str, Any]]:
    return conn.execute(SELECT_CONTACTS, params).fetchall()


def get_contact(conn: psycopg.Connection[DictRow], *, scope: str, contact_id: int) -> dict[str, Any] | None:
    return conn.execute(SELECT_CONTACT, {"scope": scope, "id": contact_id}).fetchone()


def division_in_scope(conn: psycopg.Connection[DictRow], *, scope: str, code: str) -> bool:
    return conn.execute(DIVISION_IN_SCOPE, {"scope": scope, "code": code}).fetchone() is not None


def division_exists(conn: psycopg.Connection[DictRow], code: str) -> bool:
    return conn.execute(DIVISION_EXISTS, (code,)).fetchone() is not None


def save_contact(conn: psycopg.Connection[DictRow], *, contact_id: int | None, fields: dict[str, Any],
                 channels: list[dict[str, Any]]) -> int:
    """Insert or replace a contact and its channels in the caller's transaction; return its id."""
    if contact_id is None:
        row = conn.execute(INSERT_CONTACT, fields).fetchone()
        assert row is not None
        contact_id = int(row["id"])
    else:
        conn.execute(UPDATE_CONTACT, {**fields, "id": contact_id})
        conn.execute(DELETE_CHANNELS, (contact_id,))
    for ch in channels:
        conn.execute(INSERT_CHANNEL, (contact_id, ch["channel"], ch["address"], ch["template"]))
    return contact_id


def set_duty(conn: psycopg.Connection[DictRow], contact_id: int, on_duty: bool) -> None:
    conn.execute(SET_DUTY, (on_duty, contact_id))


def delete_contact(conn: psycopg.Connection[DictRow], contact_id: int) -> None:
    conn.execute(DELETE_CONTACT, (contact_id,))
