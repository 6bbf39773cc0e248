"""What every channel receives: one outbox row, and the one error every channel raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHANNELS = ("webhook", "sms", "email", "mqtt", "sse")


class DeliveryError(Exception):
    """The receiver did not accept the notification; it will be tried again until it expires."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One outbox row being delivered."""

    id: int
    channel: str
    target: str  # URL, e-mail address or MQTT topic
    idempotency_key: str
    payload: dict[str, Any]  # see alerts/notifiers/render.py for its shape
    attempt: int
