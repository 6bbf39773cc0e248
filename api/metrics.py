"""Request metrics labelled by route template (never the raw path: bounded label values)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body


class RequestMetrics(BaseHTTPMiddleware):
    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        super().__init__(app)
        self.requests = Counter("safewatch_api_requests_total", "HTTP requests", ["route", "method", "status"],
                                registry=registry)
        self.duration = Histogram("safewatch_api_request_duration_seconds", "HTTP request duration", ["route"],
                                  registry=registry)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        # The router records the route it matched in the scope: its template, never the raw path.
        matched = request.scope.get("route")
        route = getattr(matched, "path_format", None) or getattr(matched, "path", None) or "unmatched"
        self.requests.labels(route=route, method=request.method, status=str(response.status_code)).inc()
        self.duration.labels(route=route).observe(time.perf_counter() - started)
        return response


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse bodies over the limit with 413: by Content-Length up front, and by counting the bytes
    of bodies sent without one (chunked), so no handler ever reads more than the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = too_large = False

        async def counted_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return  # whatever the app answers to a cut-off body, the answer is our 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _BodyTooLarge:
            pass
        if too_large and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(error_body(f"request body over {self.max_bytes} bytes; send less per request",
                                           ["body"], "payload_too_large"), status_code=413)
        await response(scope, receive, send)
