"""What the OpenAPI document says about errors: every status a route can answer, with the shared error body.

The statuses that follow from how a route is built are added here, for every route at once:

    400  it takes a body: one that cannot be read (not UTF-8, not the declared content type)
    401  the route needs a login (it depends on ``current_user``)
    403  a role guard (``require(...)``) stands before it
    404  it names a thing in its path (not there, or outside the caller's jurisdiction)
    413  it takes a body (the ``BodyLimit`` middleware)
    422  always: the app-wide ``refuse_unstorable_text`` checks every route's path and query, and
         FastAPI's validation answers the rest

A status a handler decides itself (409, a 403 on a jurisdiction, a 404 on a query parameter, 429) is stated
on the route, next to the code that raises it, with ``api.errors.responses(...)``. The schemathesis run in
tests/integration/api/test_api_contract.py fails on any status a route answers that its document omits.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import BaseRoute

from api.deps import current_user, require
from api.errors import ERROR_MEANINGS, ErrorBody

# The guard function `require(...)` wraps, recognised by its code object (one per definition, shared by all).
_GUARD_CODE = require("administrator").dependency.__code__
_BODY_METHODS = {"POST", "PUT", "PATCH"}
REF = "#/components/schemas/"


def _calls(dependant: Dependant) -> Iterator[object]:
    stack = [dependant]
    while stack:
        item = stack.pop()
        if item.call is not None:
            yield item.call
        stack.extend(item.dependencies)


def statuses_from_shape(route: RouteContext) -> set[int]:
    """The error statuses ``route`` can answer by how it is built (see the module docstring)."""
    calls = list(_calls(route.dependant))
    found = {422}
    if current_user in calls:
        found.add(401)
    if any(getattr(call, "__code__", None) is _GUARD_CODE for call in calls):
        found.add(403)
    if route.dependant.path_params:
        found.add(404)
    if (route.methods or set()) & _BODY_METHODS and route.body_field is not None:
        found.update((400, 413))
    return found


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` list, for every operation, the error statuses that follow from its shape."""
    build = app.openapi  # FastAPI's own, which caches the document in app.openapi_schema

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            add_error_statuses(build(), app.routes)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the document


def add_error_statuses(document: dict[str, Any], routes: list[BaseRoute]) -> None:
    """Add to ``document`` (in place) each route's shape statuses, all with ``ErrorBody`` as their body."""
    body = ErrorBody.model_json_schema(ref_template=REF + "{model}", mode="serialization")
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in body.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault("ErrorBody", body)
    content = {"application/json": {"schema": {"$ref": REF + "ErrorBody"}}}
    # Route contexts, not app.routes: included routers hold their routes, with their prefixes and dependencies.
    for route in iter_route_contexts(routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = document["paths"][route.path_format][method.lower()]
            for status in statuses_from_shape(route):
                operation["responses"].setdefault(str(status), {"description": ERROR_MEANINGS[status]})
            for status, entry in operation["responses"].items():
                if status.startswith("4"):
                    # One body for every error, FastAPI's validation errors too (HTTPValidationError is a subset).
                    entry["content"] = content
            operation["responses"] = dict(sorted(operation["responses"].items()))
