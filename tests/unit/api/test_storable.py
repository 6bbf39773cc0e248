"""The API's rule for incoming text (api/storable.py): what cannot be stored is named, wherever it hides."""

from __future__ import annotations

from typing import Any

import pytest

from api.storable import find_unstorable, unstorable

NUL, SURROGATE, ESCAPE = "\x00", "\ud800", "\x1b"


@pytest.mark.parametrize("text", ["", "锅炉超压 1.6 MPa", "line\nbreak\ttab\r", "emoji 🚒", "\x7f"])
def test_storable_text_passes(text: str) -> None:
    assert unstorable(text) is None


@pytest.mark.parametrize(("text", "named"), [(f"a{NUL}", "U+0000"), (SURROGATE, "U+D800"), ("\udfff", "U+DFFF"),
                                             (f"x{ESCAPE}[31m", "U+001B"), ("\x0b", "U+000B")])
def test_unstorable_text_is_named(text: str, named: str) -> None:
    why = unstorable(text)
    assert why is not None and named in why


def test_the_first_bad_string_of_a_body_is_located() -> None:
    body = {"ok": "fine", "rated": {"floors": 3, f"k{NUL}": 1}, "list": ["a", {"deep": [SURROGATE]}]}
    assert find_unstorable(body, ["body"]) == (["body", "rated", f"k{NUL}"], "has a key that contains U+0000 "
                                               "(NUL), which cannot be stored")
    found = find_unstorable(body["list"], ["body", "list"])
    assert found is not None and found[0] == ["body", "list", 1, "deep", 0]
    deep: Any = "x"
    for _ in range(50_000):  # no recursion limit to exhaust
        deep = [deep]
    assert find_unstorable([deep, NUL], ["body"]) == (["body", 1], "contains U+0000 (NUL), which cannot be stored")
