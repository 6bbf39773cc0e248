"""Each worker serves its own /metrics (Prometheus), shared here so they behave alike."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

log = logging.getLogger(__name__)


def serve_metrics(port: int | None, host: str) -> bool:
    """Serve the default registry on host:port; a busy port is logged, not fatal (the work matters more)."""
    if not port:
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.error("metrics port unavailable; running without /metrics (set the worker's METRICS_PORT)",
                  extra={"port": port, "error": str(exc)})
        return False
    return True
