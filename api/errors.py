"""Domain errors of the API and their one error-body shape: ``{"detail": [{"msg", "loc", "type"}]}``.

    ApiError
    ├── NotFound        404
    ├── Forbidden       403  (outside the caller's jurisdiction or role)
    ├── Conflict        409
    └── Unprocessable   422  (a domain rule, beyond schema validation)

Every other HTTP error (401 from the login check, 403 from a role guard, 405, 429 …) is answered in the same
shape: a plain-text ``HTTPException`` detail becomes one item whose ``type`` names the status. ``ErrorBody`` is
that shape as a model, for the OpenAPI document (api/openapi.py lists it under every status a route answers).

Input PostgreSQL refuses (``psycopg.DataError``: text with NUL, a number out of range …) or text that cannot
be encoded (a lone surrogate) is the caller's fault, not the server's: the last safety net below answers 422,
logged, whatever route let it through (api/storable.py refuses most of it before any route runs).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

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


class ErrorItem(BaseModel):
    """One problem: what is wrong and what to do (``msg``), where (``loc``), and a stable ``type``."""

    # Validation errors carry pydantic's extra keys (input, ctx, url): allowed, not promised.
    model_config = ConfigDict(extra="allow")
    msg: str
    loc: list[str | int] = Field(description="where: ['body', 'field'], ['path', 'code'], ['query', 'cursor'] …")
    type: str


class ErrorBody(BaseModel):
    """The one body of every 4xx answer."""

    detail: list[ErrorItem]


# What each status means for a caller, as the OpenAPI document states it.
ERROR_MEANINGS: dict[int, str] = {
    400: "the body cannot be read: not UTF-8, or not the content type it declares",
    401: "not logged in, or the token is invalid, expired or revoked: log in again (POST /api/v1/auth/token)",
    403: "the caller's role, or jurisdiction, does not allow this",
    404: "no such thing in the caller's jurisdiction (we do not say which)",
    409: "conflicts with what is stored (a duplicate, a retired record, a state that forbids it)",
    413: "the body is over the API's size limit",
    422: "the request breaks the schema or a domain rule; `detail` names each field",
    429: "too many failed log-ins; wait for the Retry-After seconds",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=`` for the error statuses it answers itself, each with the shared error body."""
    return {status: {"model": ErrorBody, "description": ERROR_MEANINGS[status]} for status in statuses}


def error_body(msg: str, loc: list[str | int], type_: str) -> dict[str, list[dict[str, object]]]:
    return {"detail": [{"msg": msg, "loc": loc, "type": type_}]}


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """The methods the resource at the request's path supports, as the OpenAPI document lists them.

    Starlette's 405 lists only the methods of the first route that matched the path, but a path such as
    /api/v1/units has one route for GET and another for POST: ``Allow`` must name both (RFC 9110 §15.5.6).
    Where a fixed path and a templated one both match (/equipment/export and /equipment/{code}), the resource
    is the fixed one: PATCH /equipment/export is an update of equipment "export" (a 404), not a method of it.
    """
    matched: list[tuple[int, set[str]]] = []
    for route in iter_route_contexts(app.routes):  # included routers hold their routes, with their prefixes
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            matched.append((len(route.param_convertors), route.methods or set()))
    fewest = min((params for params, _ in matched), default=0)
    return sorted({method for params, methods in matched if params == fewest for method in methods})


def install(app: FastAPI) -> None:
    """Register the handlers that answer every `ApiError`, `HTTPException` and unstorable input in the one body."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.msg, exc.loc, exc.type), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's default answers {"detail": "text"}; every error body here is a list of items instead.
        detail = exc.detail if isinstance(exc.detail, list) else error_body(
            str(exc.detail), [], HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_"))["detail"]
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(app, request))
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(psycopg.DataError)
    @app.exception_handler(UnicodeEncodeError)
    async def _unstorable(request: Request, exc: Exception) -> JSONResponse:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        why = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        log.warning("request refused: the database cannot store its input",
                    extra={"route": route, "method": request.method, "error": why})
        return JSONResponse(error_body(f"the input cannot be stored ({why}); correct it and send it again",
                                       ["body"], "unprocessable"), status_code=422)
