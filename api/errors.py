"""Domain errors of the API and their one error-body shape: ``{"detail": [{"msg", "loc", "type"}]}``.

    ApiError
    ├── NotFound        404
    ├── Forbidden       403  (outside the caller's jurisdiction or role)
    ├── Conflict        409
    └── Unprocessable   422  (a domain rule, beyond schema validation)

Input PostgreSQL refuses (``psycopg.DataError``: text with NUL, a number out of range …) or text that cannot
be encoded (a lone surrogate) is the caller's fault, not the server's: the last safety net below answers 422,
logged, whatever route let it through (api/storable.py refuses most of it before any route runs).
"""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Base of the API's domain errors."""

    status = 400
    type = "bad_request"

    def __init__(self, msg: str, loc: list[str | int] | None = None) -> None:
        super().__init__(msg)
        self.msg, self.loc = msg, loc or []


class NotFound(ApiError):
    """The thing does not exist (or is outside the caller's jurisdiction: we do not say which)."""

    status, type = 404, "not_found"


class Forbidden(ApiError):
    """The caller's role may not do this."""

    status, type = 403, "forbidden"


class Conflict(ApiError):
    """The change conflicts with what is stored (a duplicate, a stale state)."""

    status, type = 409, "conflict"


class Unprocessable(ApiError):
    """Well-formed, but breaks a domain rule."""

    status, type = 422, "unprocessable"


def error_body(msg: str, loc: list[str | int], type_: str) -> dict[str, list[dict[str, object]]]:
    return {"detail": [{"msg": msg, "loc": loc, "type": type_}]}


def install(app: FastAPI) -> None:
    """Register the handler that turns every `ApiError` into the shared body."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.msg, exc.loc, exc.type), status_code=exc.status)

    @app.exception_handler(psycopg.DataError)
    @app.exception_handler(UnicodeEncodeError)
    async def _unstorable(request: Request, exc: Exception) -> JSONResponse:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        why = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        log.warning("request refused: the database cannot store its input",
                    extra={"route": route, "method": request.method, "error": why})
        return JSONResponse(error_body(f"the input cannot be stored ({why}); correct it and send it again",
                                       ["body"], "unprocessable"), status_code=422)
