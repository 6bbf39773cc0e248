"""Shared buffers against the ingest's write working set: one leaf page of the primary key an equipment."""

from __future__ import annotations

from ingest.buffers import HEADROOM, PAGE_BYTES, buffers_advice, wanted_buffers

MiB = 2**20


def test_the_working_set_is_a_page_an_equipment_and_headroom():
    assert wanted_buffers(0) == 0
    assert wanted_buffers(1) == 12_288
    assert wanted_buffers(20_000) == 20_000 * PAGE_BYTES * HEADROOM  # 234.4 MiB: 128 MB is short, 256 MB holds


def test_buffers_that_hold_the_fleet_need_no_advice():
    assert buffers_advice(256 * MiB, 20_000) is None
    assert buffers_advice(wanted_buffers(20_000), 20_000) is None  # exactly enough
    assert buffers_advice(128 * MiB, 0) is None


def test_buffers_below_the_working_set_say_what_to_set():
    advice = buffers_advice(128 * MiB, 20_000)
    assert advice is not None
    assert "shared_buffers (128 MiB)" in advice
    assert "20,000 equipment" in advice
    assert "at least 235MB" in advice  # 234.4 MiB rounded up: enough, in the unit postgresql.conf takes
    assert "restart PostgreSQL" in advice
    assert buffers_advice(wanted_buffers(20_000) - 1, 20_000) is not None
