"""The dashboard: static files served by the API process itself (no front-end server at run time)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["dashboard"])


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> HTMLResponse:
    return HTMLResponse(resources.files("api.dashboard").joinpath("static/index.html").read_text(encoding="utf-8"))
