"""Live alert changes for the dashboard over server-sent events, scoped to the caller's jurisdiction.

The alert worker and the notifier (on a climb) ``pg_notify('safewatch_alerts', alert_id)`` in the
transaction that changes an alert; people's actions through the API (acknowledge, shelve, reset …) reach
``safewatch_timers`` through the alert_transitions trigger, also with the alert id. One `AlertHub` per
API process holds ONE connection listening on both
(not one per browser), looks up where each notified alert belongs, and hands a small event to every
subscriber whose jurisdiction holds it. A subscriber first receives ``ready`` once the hub is
listening (the page refetches then, so nothing changed before that moment is missed), ``alert`` for
each change, and ``resync`` when it fell behind or the hub had to reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from alerts.notifier_worker import TIMERS_CHANNEL
from alerts.store import NOTIFY_CHANNEL
from api.dashboard.queries import SELECT_ALERT_PLACE
from safewatch.retry import backoff

log = logging.getLogger(__name__)

LISTEN_CHANNELS = tuple("LISTEN " + channel for channel in (NOTIFY_CHANNEL, TIMERS_CHANNEL))
QUEUE_LIMIT = 256


def covers(scope: str, place: Mapping[str, Any]) -> bool:
    """Does a jurisdiction (region, league or banner code) hold an alert placed at ``place``?"""
    return scope in (place["division_code"], place["league_code"], place["region_code"])


def alert_event(place: Mapping[str, Any]) -> dict[str, Any]:
    """What a browser is told about a changed alert: enough to update counts and to sound a new critical
    (``learned_at``: when the system learned of it, not the device's timestamp), not the whole row."""
    keys = ("id", "severity", "world", "state", "active", "level", "rule_key", "division_code", "league_code",
            "learned_at")
    return {k: place[k] for k in keys}


def parse_alert_ids(payloads: list[str]) -> list[int]:
    """Notification payloads are alert ids; anything else is not ours and is skipped."""
    return [int(p) for p in payloads if p.isdigit()]


@dataclass(eq=False)
class Subscription:
    scope: str
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_LIMIT))

    def offer(self, kind: str, data: dict[str, Any]) -> None:
        """Queue an event; a subscriber that fell behind gets one ``resync`` instead of a backlog."""
        try:
            self.queue.put_nowait((kind, data))
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(("resync", {"reason": "fell behind"}))


class AlertHub:
    """One LISTEN connection per process, running while at least one browser is subscribed."""

    def __init__(self, db_url: str) -> None:
        self._url = db_url
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._listening = False

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @asynccontextmanager
    async def subscribe(self, scope: str) -> AsyncIterator[Subscription]:
        sub = Subscription(scope)
        self._subscribers.add(sub)
        if self._listening:
            sub.offer("ready", {})
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dashboard-alert-hub")
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
            if not self._subscribers and self._task is not None:
                self._task.cancel()  # the last browser left: release the LISTEN connection
                self._task = None
                self._listening = False

    def _broadcast(self, kind: str, data: dict[str, Any]) -> None:
        for sub in list(self._subscribers):
            sub.offer(kind, data)

    async def _connect(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        return await psycopg.AsyncConnection.connect(self._url, autocommit=True, row_factory=dict_row,
                                                     application_name="safewatch-dashboard-hub")

    async def _run(self) -> None:
        delays = backoff()
        failing = False
        while True:
            try:
                async with await self._connect() as listener, await self._connect() as reader:
                    for listen in LISTEN_CHANNELS:
                        await listener.execute(listen)
                    self._listening = True
                    if failing:
                        log.info("alert hub listening again")
                        failing, delays = False, backoff()
                    self._broadcast("ready", {})
                    async for note in listener.notifies():
                        await self._deliver(reader, parse_alert_ids([note.payload]))
            except psycopg.Error as exc:
                self._listening = False
                if not failing:
                    log.error("alert hub lost the database; browsers fall back to polling until it returns",
                              extra={"error": str(exc)})
                    failing = True
                self._broadcast("resync", {"reason": "database connection lost"})
                await asyncio.sleep(next(delays))

    async def _deliver(self, reader: psycopg.AsyncConnection[dict[str, Any]], ids: list[int]) -> None:
        if not ids:
            return
        cursor = await reader.execute(SELECT_ALERT_PLACE, {"ids": ids})
        for place in await cursor.fetchall():
            event = alert_event(place)
            for sub in list(self._subscribers):
                if covers(sub.scope, place):
                    sub.offer("alert", event)
