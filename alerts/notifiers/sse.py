"""The dashboards' channel: an outbox row per notified division, announced with ``pg_notify``.

Delivery here is the announcement: the API's stream (api/stream/) LISTENs, reads the row and hands
it to every connected dashboard whose jurisdiction holds the division; a dashboard that reconnects
replays the rows it missed from the table by id (``Last-Event-ID``).
"""

from __future__ import annotations

import threading

import psycopg

from alerts.notifiers.base import DeliveryError, Notification
from safewatch.db import connect

NOTIFICATIONS_CHANNEL = "safewatch_notifications"
ANNOUNCE = "SELECT pg_notify('" + NOTIFICATIONS_CHANNEL + "', %s)"


class SseSender:
    def __init__(self, db_url: str) -> None:
        self._url = db_url
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def send(self, n: Notification) -> None:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self._url, autocommit=True)
                self._conn.execute(ANNOUNCE, (str(n.id),))
            except psycopg.Error as exc:
                self._conn = None
                raise DeliveryError(f"could not announce notification {n.id} to the dashboards: {exc}") from exc
