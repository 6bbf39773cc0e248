"""The API's one rule for incoming text: what PostgreSQL cannot store is refused with 422, never a 500.

PostgreSQL's ``text`` and ``jsonb`` cannot hold U+0000, and a lone UTF-16 surrogate (``"\\ud800"`` is
valid JSON) cannot even be encoded to UTF-8. Other C0 control characters are storable but break the
dashboard, CSV exports and terminals that show them, so they are refused too; tab, line feed and carriage
return stay allowed in free text. The check runs once per request, for every route (an app-wide dependency),
over the path and query parameters, form fields and every key and string of a JSON body, and names the field.

``unstorable`` and ``find_unstorable`` are pure; ``refuse_unstorable_text`` is the dependency.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from fastapi import Request

from api.errors import Unprocessable

Loc = list[str | int]

# NUL, the C0 controls other than \t \n \r, and the surrogate code points (never valid Unicode on their own).
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_JSON_TYPES = ("application/json", "application/merge-patch+json")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be taken (its first offending character, named), or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    code = ord(found.group())
    if code == 0:
        return "contains U+0000 (NUL), which cannot be stored"
    if 0xD800 <= code <= 0xDFFF:
        return f"contains a lone surrogate U+{code:04X}, which is not valid Unicode"
    return f"contains the control character U+{code:04X}; only tab, line feed and carriage return are allowed"


def find_unstorable(value: object, loc: Loc) -> tuple[Loc, str] | None:
    """The first string (or object key) inside a decoded JSON ``value`` that cannot be taken: (its loc, why)."""
    stack: list[tuple[object, Loc]] = [(value, loc)]
    while stack:  # iterative: a deeply nested body must not exhaust the recursion limit
        item, where = stack.pop()
        if isinstance(item, str):
            why = unstorable(item)
            if why is not None:
                return where, why
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                why = unstorable(key)
                if why is not None:
                    return [*where, key], f"has a key that {why}"
                stack.append((child, [*where, key]))
        elif isinstance(item, list):
            stack.extend((child, [*where, i]) for i, child in reversed(list(enumerate(item))))
    return None


def _refuse(loc: Loc, why: str) -> Unprocessable:
    field = ".".join(str(x) for x in loc[1:]) or loc[0]
    where = {"path": "path parameter", "query": "query parameter", "body": "body field"}.get(str(loc[0]), "field")
    return Unprocessable(f"{where} {field!r} {why}; send it again without that character", [*loc])


def _safe_loc_text(loc: Loc) -> Loc:
    # The loc goes back in the JSON error body, which must itself be valid UTF-8.
    return [x.encode("utf-8", "backslashreplace").decode() if isinstance(x, str) else x for x in loc]


def _parameters(request: Request) -> Iterator[tuple[Loc, str]]:
    for name, value in request.path_params.items():
        if isinstance(value, str):
            yield ["path", name], value
    for name, value in request.query_params.multi_items():
        yield ["query", name], name
        yield ["query", name], value


async def refuse_unstorable_text(request: Request) -> None:
    """App-wide dependency: raise 422 (``Unprocessable``) naming the first field that cannot be stored."""
    for loc, text in _parameters(request):
        why = unstorable(text)
        if why is not None:
            raise _refuse(_safe_loc_text(loc), why)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in _JSON_TYPES or content_type.endswith("+json"):
        raw = await request.body()  # cached by Starlette: the route's own parsing reads the same bytes
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return  # not JSON: the route's own validation answers that
        found = find_unstorable(body, ["body"])
    elif content_type in _FORM_TYPES:
        form = await request.form()  # cached too
        found = find_unstorable({k: v for k, v in form.multi_items() if isinstance(v, str)}, ["body"])
    elif content_type.startswith("text/"):
        # Uploaded files (CSV): only NUL, which no text column takes; their rows are checked by the importer.
        found = (["body"], "contains U+0000 (NUL), which cannot be stored") if b"\x00" in await request.body() \
            else None
    else:
        found = None
    if found is not None:
        raise _refuse(_safe_loc_text(found[0]), found[1])
