"""The HTTP API (FastAPI): registry, telemetry, alert workflow, auth, metrics and the dashboard."""
