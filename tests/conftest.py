"""Shared test configuration.

Tests use the real services: PostgreSQL at SAFEWATCH_TEST_DB_URL (default the local server) and
the MQTT broker at SAFEWATCH_TEST_MQTT_URL (default: a private Mosquitto with the shipped
configuration, started for the session); see tests/services.py.
Tests under integration/ and system/ get those markers from their folder.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

pytest_plugins = ["tests.services"]

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(item.fspath).relative_to(_HERE).parts
        if parts and parts[0] in ("integration", "system"):
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture
def uid() -> str:
    """A short token unique to this test, for gateway ids, client ids and share groups."""
    return uuid.uuid4().hex[:10]
