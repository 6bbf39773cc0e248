"""Is a token still the person's current one? Checked on every request, cached for a second.

The cache bounds the cost (one indexed lookup per person per second per API process) and the delay:
a token revoked in the database is refused by every API process within ``TTL_S``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psycopg
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

from api.auth.tokens import Principal

TTL_S = 1.0

SELECT_CURRENT_IDENTITY = """
SELECT token_version, role, division_code FROM users WHERE id = %s AND retired_at IS NULL
"""
BUMP_TOKEN_VERSION = "UPDATE users SET token_version = token_version + 1 WHERE id = %s"


@dataclass(frozen=True, slots=True)
class Identity:
    """What the registry says of a person now (None in the cache: no such active person)."""

    token_version: int
    role: str
    division_code: str


def is_current(principal: Principal, identity: Identity | None) -> bool:
    """A token is honoured only for an active person whose identity has not changed since it was issued."""
    return (identity is not None and identity.token_version == principal.token_version
            and identity.role == principal.role and identity.division_code == principal.division_code)


class IdentityCache:
    """Per-process cache of `Identity` by user id, each entry kept ``ttl_s`` seconds."""

    def __init__(self, ttl_s: float = TTL_S) -> None:
        self._ttl_s = ttl_s
        self._entries: dict[int, tuple[float, Identity | None]] = {}
        self._lock = threading.Lock()

    def get(self, pool: ConnectionPool, user_id: int) -> Identity | None:
        """The person's identity, from the cache or (briefly borrowing a pooled connection) the database."""
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(user_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        with pool.connection() as conn, conn.cursor() as cur:
            row = cur.execute(SELECT_CURRENT_IDENTITY, (user_id,)).fetchone()
        found = None if row is None else Identity(*(row.values() if isinstance(row, dict) else row))
        with self._lock:
            if len(self._entries) > 100_000:  # a bound, whatever ids are thrown at it
                self._entries.clear()
            self._entries[user_id] = (now + self._ttl_s, found)
        return found

    def forget(self, user_id: int) -> None:
        with self._lock:
            self._entries.pop(user_id, None)


def revoke_tokens(conn: psycopg.Connection[DictRow], user_id: int) -> None:
    """End every token the person holds (logout)."""
    conn.execute(BUMP_TOKEN_VERSION, (user_id,))
