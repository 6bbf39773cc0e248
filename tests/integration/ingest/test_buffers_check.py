"""The ingest reads this server's shared_buffers and the registry's size, and warns when they do not fit."""

from __future__ import annotations

import logging

import psycopg
import pytest

from ingest.buffers import HEADROOM, PAGE_BYTES, buffers_and_fleet, check_buffers, wanted_buffers
from safewatch.registry.divisions import parse_divisions, shipped_divisions_text
from safewatch.registry.seed import demo_registry, insert_registry
from tests.services import create_database, drop_database

LARGEST_TEST_FLEET = 20_000


@pytest.fixture
def empty_url():
    url = create_database(storage="plain")
    yield url
    drop_database(url)


def test_a_registry_the_buffers_hold_gets_no_warning(empty_url, caplog):
    registry = demo_registry(parse_divisions(shipped_divisions_text()), 40, seed=3, gateway_prefix="buf")
    with psycopg.connect(empty_url) as c:
        insert_registry(c, registry)
        with caplog.at_level(logging.WARNING, logger="ingest.buffers"):
            assert check_buffers(c) is None
    assert not caplog.records


def test_a_registry_past_the_buffers_is_warned_of_with_the_setting_to_make(empty_url, caplog):
    with psycopg.connect(empty_url) as c:
        buffers, _ = buffers_and_fleet(c)
    fleet = int(buffers / (PAGE_BYTES * HEADROOM)) + 1  # the smallest registry these buffers do not hold
    if fleet > LARGEST_TEST_FLEET:
        pytest.skip(f"this server's shared_buffers ({buffers // 2**20} MiB) hold more than {LARGEST_TEST_FLEET:,} "
                    "equipment, the largest registry this test writes")
    registry = demo_registry(parse_divisions(shipped_divisions_text()), fleet, seed=4, gateway_prefix="buf")
    with psycopg.connect(empty_url) as c:
        insert_registry(c, registry)
        with caplog.at_level(logging.WARNING, logger="ingest.buffers"):
            advice = check_buffers(c)
    assert advice is not None and f"{fleet:,} equipment" in advice
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.getMessage() == advice
    assert record.equipment == fleet and record.shared_buffers == buffers
    assert record.wanted_bytes == wanted_buffers(fleet) > buffers
