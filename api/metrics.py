"""Request metrics labelled by route template (never the raw path: bounded label values)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from api.errors import error_body


class RequestMetrics(BaseHTTPMiddleware):
    def __init__(self, app, registry: CollectorRegistry) -> None:  # type: ignore[no-untyped-def]
        super().__init__(app)
        self.requests = Counter("safewatch_api_requests_total", "HTTP requests", ["route", "method", "status"],
                                registry=registry)
        self.duration = Histogram("safewatch_api_request_duration_seconds", "HTTP request duration", ["route"],
                                  registry=registry)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        route = "unmatched"
        for r in request.app.routes:
            if r.matches(request.scope)[0] is Match.FULL:
                route = getattr(r, "path", "unmatched")
                break
        started = time.perf_counter()
        response = await call_next(request)
        self.requests.labels(route=route, method=request.method, status=str(response.status_code)).inc()
        self.duration.labels(route=route).observe(time.perf_counter() - started)
        return response


class BodyLimit(BaseHTTPMiddleware):
    """Refuse bodies over the limit before anything reads them."""

    def __init__(self, app, max_bytes: int) -> None:  # type: ignore[no-untyped-def]
        super().__init__(app)
        self.max_bytes = max_bytes

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return JSONResponse(error_body(f"request body over {self.max_bytes} bytes; send less per request",
                                           ["body"], "payload_too_large"), status_code=413)
        return await call_next(request)
