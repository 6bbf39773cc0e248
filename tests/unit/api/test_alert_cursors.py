"""The alert lists' keyset cursors: round trips, and a cursor of another order refused (not rows skipped)."""

from __future__ import annotations

import pytest

from api.alerts.cursors import decode_key, encode_key
from api.pagination import BadCursor


def test_a_cursor_gives_back_its_key():
    key = [1, False, "2026-12-08T00:00:00.123456+00:00", 42]
    assert decode_key(encode_key("priority", key), "priority", 4) == key
    assert decode_key(None, "priority", 4) is None
    assert decode_key("", "time", 2) is None


@pytest.mark.parametrize("cursor", [
    encode_key("time", ["2026-12-08T00:00:00+00:00", 42]),  # another order
    encode_key("priority", [1, False, "2026-12-08T00:00:00+00:00"]),  # too short
    "MTIz",  # an id cursor of the old shape (base64 of "123")
    "not base64 at all!",
])
def test_a_cursor_of_another_order_or_shape_is_refused(cursor):
    with pytest.raises(BadCursor) as info:
        decode_key(cursor, "priority", 4)
    assert info.value.loc == ["query", "cursor"] and "sort=priority" in info.value.msg
