"""HTTP edges every route shares: the body limit (with and without Content-Length) and metrics by route."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from api.app import create_app
from safewatch.settings import ApiSettings, DbSettings, Settings


def test_bodies_over_the_limit_are_refused_with_or_without_a_length(client):
    big = b"username=" + b"x" * (300 * 1024)
    declared = client.post("/api/v1/auth/token", content=big,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert declared.status_code == 413
    assert declared.json()["detail"][0]["loc"] == ["body"]

    def chunks():  # no Content-Length: sent chunked
        for _ in range(40):
            yield b"x" * 8192

    chunked = client.post("/api/v1/auth/token", content=chunks(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert chunked.status_code == 413
    assert "send less" in chunked.json()["detail"][0]["msg"]


def test_requests_are_counted_by_route_template(api_db, api_pool):
    from fastapi.testclient import TestClient

    registry = CollectorRegistry()
    settings = Settings(db=DbSettings(url=api_db), api=ApiSettings(jwt_secret="s" * 32))
    with TestClient(create_app(settings, registry=registry, pool=api_pool)) as c:
        c.get("/api/v1/equipment/310015000201900001")
        c.get("/api/v1/equipment/310015000201900002")
        c.get("/no/such/page")
    sample = registry.get_sample_value
    assert sample("safewatch_api_requests_total",
                  {"route": "/api/v1/equipment/{code}", "method": "GET", "status": "401"}) == 2
    assert sample("safewatch_api_requests_total", {"route": "unmatched", "method": "GET", "status": "404"}) == 1
