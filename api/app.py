"""The FastAPI application: `create_app(settings)` wires the domains, auth, metrics and dashboard."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import REGISTRY, CollectorRegistry, Info, generate_latest
from psycopg_pool import ConnectionPool

import safewatch
from api import errors
from api.alerts.routes import router as alerts_router
from api.auth.revocation import IdentityCache
from api.auth.routes import router as auth_router
from api.auth.throttle import LoginThrottle
from api.contacts.routes import router as contacts_router
from api.dashboard.routes import router as dashboard_router
from api.deadletters.routes import router as deadletters_router
from api.divisions.response_routes import router as division_response_router
from api.divisions.routes import router as divisions_router
from api.equipment.routes import router as equipment_router
from api.gateways.routes import router as gateways_router
from api.kpis.routes import router as kpis_router
from api.metrics import BodyLimit, RequestMetrics
from api.openapi import document_errors
from api.policies.routes import router as policies_router
from api.responses.routes import router as responses_router
from api.storable import refuse_unstorable_text
from api.stream.routes import router as stream_router
from api.system.routes import router as system_router
from api.telemetry.routes import router as telemetry_router
from api.units.routes import router as units_router
from api.users.routes import router as users_router
from safewatch.db import open_pool
from safewatch.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, registry: CollectorRegistry = REGISTRY,
               pool: ConnectionPool | None = None, instance: str | None = None) -> FastAPI:
    """Build the app; it opens its own pool at start-up unless one is given (tests share theirs).

    ``instance`` (random when not given) is what /healthz answers with: whoever started this process
    (``safewatch demo``) checks it to know the API on its URL is its own, not another program on that port.
    """
    secret = settings.api.jwt_secret.get_secret_value() if settings.api.jwt_secret else None
    if secret is None:
        log.warning("no SAFEWATCH_API__JWT_SECRET set: tokens will not survive a restart of this process")
        secret = secrets.token_urlsafe(32)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = pool is None
        app.state.pool = pool or open_pool(settings.db.url, min_size=settings.db.pool_min,
                                           max_size=settings.db.pool_max)
        try:
            yield
        finally:
            if own:
                app.state.pool.close()

    # One rule for every route: text PostgreSQL cannot store is refused with 422 before any handler runs.
    app = FastAPI(title="SafeWatch", version=safewatch.__version__, lifespan=lifespan,
                  dependencies=[Depends(refuse_unstorable_text)],
                  description="Special-equipment (特种设备) safety monitoring: registry, telemetry, alerts.")
    app.state.settings = settings
    app.state.jwt_secret = secret
    app.state.identities = IdentityCache()
    app.state.login_throttle = LoginThrottle()
    app.state.instance = instance or secrets.token_hex(8)
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.api.max_body_bytes)
    app.add_middleware(RequestMetrics, registry=registry)
    Info("safewatch_build", "SafeWatch build", registry=registry).info({"version": safewatch.__version__})
    for router in (auth_router, divisions_router, equipment_router, alerts_router, dashboard_router):
        app.include_router(router)
    app.include_router(division_response_router)  # trapped-passenger arrival deadlines
    app.include_router(kpis_router)  # alarm-load KPIs (issue 6)
    for router in (units_router, gateways_router, users_router):  # the registry (issue 3)
        app.include_router(router)
    for router in (telemetry_router, deadletters_router):  # ingest (issue 5)
        app.include_router(router)
    app.include_router(system_router)  # alerts about SafeWatch itself (issue 22)
    for router in (policies_router, contacts_router, responses_router, stream_router):  # escalation (issue 7)
        app.include_router(router)

    document_errors(app)  # every status each operation answers, with the one error body

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        with app.state.pool.connection() as conn:
            conn.execute("SELECT 1")
        return {"status": "ok", "instance": app.state.instance}

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry).decode(), media_type="text/plain; version=0.0.4")

    return app
