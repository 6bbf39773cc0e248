"""Fixtures of the ingest tests: the API in-process over the real database, logged in per role."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from api.app import create_app
from api.auth.users import upsert_user
from safewatch.settings import ApiSettings, DbSettings, Settings


@pytest.fixture
def api_as(settings: Settings, uid: str) -> Iterator[Callable[[str, str], TestClient]]:
    """``api_as(role, division)``: a client of a fresh app, logged in as a new user of that role.

    ``db_url`` points the app at another database than the session's (e.g. a plain-storage one).
    """
    clients: list[TestClient] = []

    def login(role: str, division: str, *, db_url: str | None = None) -> TestClient:
        url = db_url or settings.db.url
        app_settings = settings.model_copy(update={"api": ApiSettings(jwt_secret="test-secret-" + uid * 4),
                                                   "db": DbSettings(url=url)})
        name = f"{role[:8]}-{division}-{uid}-{len(clients)}"
        with psycopg.connect(url) as c:
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
