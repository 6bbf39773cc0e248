"""Fixtures of the ingest tests: the API in-process over the real database, logged in per role."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from api.app import create_app
from api.auth.users import upsert_user
from safewatch.settings import ApiSettings, Settings


@pytest.fixture
def api_as(settings: Settings, uid: str) -> Iterator[Callable[[str, str], TestClient]]:
    """``api_as(role, division)``: a client of a fresh app, logged in as a new user of that role."""
    app_settings = settings.model_copy(update={"api": ApiSettings(jwt_secret="test-secret-" + uid * 4)})
    clients: list[TestClient] = []

    def login(role: str, division: str) -> TestClient:
        name = f"{role[:8]}-{division}-{uid}-{len(clients)}"
        with psycopg.connect(settings.db.url) as c:
            upsert_user(c, name, "pw-" + uid, role, division)
        client = TestClient(create_app(app_settings, registry=CollectorRegistry()))
        client.__enter__()
        clients.append(client)
        token = client.post("/api/v1/auth/token", data={"username": name, "password": "pw-" + uid})
        assert token.status_code == 200, token.text
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        return client

    yield login
    for client in clients:
        client.__exit__(None, None, None)
