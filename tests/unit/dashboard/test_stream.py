"""The pure parts of the dashboard's live alert stream: who receives what."""

from __future__ import annotations

import asyncio

from api.dashboard.stream import QUEUE_LIMIT, Subscription, alert_event, covers, parse_alert_ids

PLACE = {"id": 7, "severity": "critical", "world": "hazard", "state": "active_unack", "active": True, "level": "banner",
         "rule_key": "event.passenger_trapped", "division_code": "150202", "league_code": "150200",
         "region_code": "150000", "learned_at": "2026-12-08T00:00:00+00:00"}


def test_an_alert_reaches_its_banner_league_and_region_only():
    assert covers("150202", PLACE) and covers("150200", PLACE) and covers("150000", PLACE)
    assert not covers("150203", PLACE)  # a sibling banner
    assert not covers("150100", PLACE)  # another league


def test_the_event_carries_no_more_than_the_counts_need():
    assert alert_event(PLACE) == {k: v for k, v in PLACE.items() if k != "region_code"}


def test_payloads_that_are_not_alert_ids_are_skipped():
    assert parse_alert_ids(["12", "x", "", "-3", "40"]) == [12, 40]


def test_a_subscriber_that_falls_behind_gets_one_resync_instead_of_a_backlog():
    async def scenario() -> list[tuple[str, dict]]:
        sub = Subscription("150000")
        for i in range(QUEUE_LIMIT + 5):
            sub.offer("alert", {"id": i})
        return [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]

    queued = asyncio.run(scenario())
    # The backlog is dropped for one resync (the page refetches), and what came after it follows.
    assert queued == [("resync", {"reason": "fell behind"})] + [("alert", {"id": QUEUE_LIMIT + i}) for i in range(1, 5)]
