"""Turning registry `Problem`s into one 4xx with every reason, in the API's error-body shape."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from fastapi import HTTPException
from psycopg.rows import DictRow
from pydantic import ValidationError

from api.deps import IN_SCOPE
from safewatch.registry.records import Problem

# 403 beats 409 beats 422: say first what the caller cannot fix by editing the body.
_STATUS = {"forbidden": 403, "duplicate": 409}

SELECT_IN_SCOPE = f"SELECT 1 FROM divisions d WHERE d.code = %(code)s AND {IN_SCOPE}"


def raise_problems(problems: Sequence[Problem], *, where: str = "body") -> None:
    """Raise an `HTTPException` listing every problem (no-op when there are none)."""
    if not problems:
        return
    status = min((_STATUS.get(p.kind, 422) for p in problems), key=lambda s: {403: 0, 409: 1}.get(s, 2))
    raise HTTPException(status, detail=[{"msg": p.message, "loc": [where, p.field], "type": p.kind}
                                        for p in problems])


def raise_validation(exc: ValidationError, *, where: str = "body") -> None:
    """Re-raise a record's `ValidationError` as the 422 FastAPI gives for a bad body."""
    raise HTTPException(422, detail=[{"msg": e["msg"].removeprefix("Value error, "),
                                      "loc": [where, *e["loc"]], "type": e["type"]}
                                     for e in exc.errors(include_url=False)]) from None


def division_in_scope(conn: psycopg.Connection[DictRow], *, scope: str, code: str) -> bool:
    return conn.execute(SELECT_IN_SCOPE, {"scope": scope, "code": code}).fetchone() is not None
