"""Opaque keyset cursors: base64 of the last row's key, so pages stay stable under inserts."""

from __future__ import annotations

import base64
import binascii

from api.errors import ApiError


class BadCursor(ApiError):
    """The cursor was not produced by this API."""

    status, type = 422, "bad_cursor"


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        return int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor("cursor is not one this API returned; start again without it", ["query", "cursor"]) from None
