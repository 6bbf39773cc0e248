"""What text the database can store, decided once for every process (pure).

PostgreSQL refuses U+0000 in ``text`` and in ``jsonb`` strings and keys, and a Python string holding a
lone surrogate cannot even be encoded to send. JSON parsers (orjson, msgspec) reject lone surrogates
and raw invalid UTF-8, but accept the escape ``\\u0000``. So:

- a field the contract stores as JSON (an event's ``details`` and extra fields) holding U+0000, or
  nested deeper than `MAX_JSON_DEPTH`, makes the message `UnstorableText` (rejected with that reason,
  dead-lettered with its raw bytes): the stored document would no longer be what the gateway sent;
- free text we write ourselves about a message (a dead letter's topic and detail) goes through
  `storable_text`, which escapes what cannot be stored and bounds the length, so no input can make
  that write fail.
"""

from __future__ import annotations

from typing import Any

from safewatch.contract.errors import UnstorableText

#: Deepest nesting of a stored JSON field. orjson parses up to 1024 levels but serialises only 254,
#: and no gateway needs more than a few: 32 leaves room and keeps the walk below cheap.
MAX_JSON_DEPTH = 32

_NUL = "\x00"


def storable_text(value: str, limit: int = 4096) -> str:
    """``value`` as text PostgreSQL stores: U+0000 and lone surrogates escaped, cut to ``limit`` characters."""
    if _NUL in value:
        value = value.replace(_NUL, "\\u0000")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: written as \udXXX escapes
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value


def check_storable_json(value: Any, *, field: str) -> None:
    """Raise `UnstorableText` when ``value`` (parsed JSON) holds U+0000 or nests deeper than `MAX_JSON_DEPTH`.

    Iterative, so no input reaches Python's recursion limit.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _NUL in item:
                raise UnstorableText(f"{field} holds U+0000 (\\u0000) in a string; PostgreSQL cannot store it: "
                                     "send text without NUL characters")
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise UnstorableText(f"{field} is nested deeper than {MAX_JSON_DEPTH} levels; flatten it")
            if isinstance(item, dict):
                for key, inner in item.items():
                    if _NUL in key:
                        raise UnstorableText(f"{field} holds U+0000 (\\u0000) in a key; PostgreSQL cannot "
                                             "store it: send keys without NUL characters")
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in item)
