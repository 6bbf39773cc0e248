"""Each worker serves its own /metrics (Prometheus), shared here so they behave alike.

A busy metrics port does not stop a worker: alerts and readings matter more than their metrics, and
Prometheus shows the missing target (``up == 0``). The worker says so once, at ERROR, naming the
environment variable to set.
"""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

from safewatch.runtime import port_unavailable_reason, setting_env_var
from safewatch.settings import Settings

log = logging.getLogger(__name__)

#: The processes with a ``metrics_port`` setting of their own (settings group = process name).
METRICS_PROCESSES = ("ingest", "alerts", "notifier")


def serve_metrics(port: int | None, host: str, *, setting: str = "the worker's METRICS_PORT setting") -> bool:
    """Serve the default registry on host:port; a busy port is logged once, not fatal. True when serving."""
    if not port:
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.error("no /metrics: port %s on %s is %s; running without it. Set %s to a free port (0: no metrics)",
                  port, host, port_unavailable_reason(exc), setting,
                  extra={"port": port, "host": host, "setting": setting, "error": str(exc)})
        return False
    return True


def serve_process_metrics(settings: Settings, process: str) -> bool:
    """Serve /metrics for ``process`` (ingest, alerts or notifier) on its configured port, as `serve_metrics` does."""
    if process not in METRICS_PROCESSES:
        raise ValueError(f"{process!r} has no metrics port; one of {', '.join(METRICS_PROCESSES)}")
    port = getattr(settings, process).metrics_port
    return serve_metrics(port, settings.api.host, setting=setting_env_var(process, "metrics_port"))
