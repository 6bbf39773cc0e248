"""What text the database can store, decided once for every process (pure).

PostgreSQL refuses U+0000 in ``text`` and in ``jsonb`` strings and keys, and a Python string holding a
lone surrogate cannot even be encoded to send. JSON parsers (orjson, msgspec) reject lone surrogates
and raw invalid UTF-8, but accept the escape ``\\u0000``. So:

- a field the contract stores as JSON (an event's ``details`` and extra fields) goes through
  `storable_json`: U+0000 is written as the six characters ``\\u0000`` and what nests deeper than
  `MAX_JSON_DEPTH` is replaced by a note. The event itself is kept: a trapped passenger is alerted
  whatever firmware put in a free-text detail;
- free text we write ourselves about a message (a dead letter's topic and detail) goes through
  `storable_text`, which escapes what cannot be stored and bounds the length, so no input can make
  that write fail.
"""

from __future__ import annotations

from typing import Any

#: Deepest nesting of a stored JSON field. orjson parses up to 1024 levels but serialises only 254,
#: and no gateway needs more than a few.
MAX_JSON_DEPTH = 32
#: What stands in for a part of a stored JSON field nested deeper than `MAX_JSON_DEPTH`.
TOO_DEEP = f"(nested deeper than {MAX_JSON_DEPTH} levels: not kept)"

_NUL = "\x00"
_NUL_ESCAPED = "\\u0000"


def storable_text(value: str, limit: int = 4096) -> str:
    """``value`` as text PostgreSQL stores: U+0000 and lone surrogates escaped, cut to ``limit`` characters."""
    if _NUL in value:
        value = value.replace(_NUL, _NUL_ESCAPED)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: written as \udXXX escapes
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value


def storable_json(value: Any) -> Any:
    """``value`` (parsed JSON) as jsonb stores it: U+0000 escaped in strings and keys, nesting cut at
    `MAX_JSON_DEPTH`. ``value`` itself when nothing needs it (the common case), else a copy."""
    return _storable(value, 1)[0]


def _storable(value: Any, depth: int) -> tuple[Any, bool]:
    """(the storable value, whether it differs). Recursion stops at `MAX_JSON_DEPTH` + 1 levels."""
    if isinstance(value, str):
        return (value.replace(_NUL, _NUL_ESCAPED), True) if _NUL in value else (value, False)
    if not isinstance(value, dict | list):
        return value, False
    if depth > MAX_JSON_DEPTH:
        return TOO_DEEP, True
    changed = False
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            inner, differs = _storable(v, depth + 1)
            if _NUL in k:
                k, differs = k.replace(_NUL, _NUL_ESCAPED), True
            out[k] = inner
            changed |= differs
        return (out, True) if changed else (value, False)
    items = []
    for v in value:
        inner, differs = _storable(v, depth + 1)
        items.append(inner)
        changed |= differs
    return (items, True) if changed else (value, False)
