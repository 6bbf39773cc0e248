"""Notification channels: render (pure) and send (I/O) one outbox row.

    DeliveryError          the receiver did not take it; the outbox retries with back-off
    └── (any channel)      message says what failed and where
"""

from alerts.notifiers.base import CHANNELS, DeliveryError, Notification

__all__ = ["CHANNELS", "DeliveryError", "Notification"]
