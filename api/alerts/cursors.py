"""Keyset cursors of the alert lists: the last row's sort key, opaque to the caller.

A cursor names the order it was made for, so one made for another order (or by another version) is
refused with a message rather than silently skipping rows.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from api.pagination import BadCursor


def encode_key(order: str, key: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([order, *key])).decode().rstrip("=")


def decode_key(cursor: str | None, order: str, arity: int) -> list[Any] | None:
    """The sort key in ``cursor`` (``arity`` values), or None without a cursor."""
    if not cursor:
        return None
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        value = None
    if not isinstance(value, list) or len(value) != arity + 1 or value[0] != order:
        raise BadCursor(f"cursor was not made for sort={order}; start again without it, keeping the same sort",
                        ["query", "cursor"])
    return value[1:]
