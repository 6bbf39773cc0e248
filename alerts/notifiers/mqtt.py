"""MQTT alert topics: publish at QoS 1 on ``se/v1/alerts/{division}`` and wait for the broker's PUBACK."""

from __future__ import annotations

import threading

import paho.mqtt.client as paho

from alerts.notifiers.base import DeliveryError, Notification
from alerts.notifiers.render import mqtt_message
from safewatch.mqtt import connect_publisher
from safewatch.settings import MqttSettings


class MqttSender:
    """One publisher connection shared by the sender threads (paho's publish is thread-safe)."""

    def __init__(self, settings: MqttSettings, *, client_id: str, timeout_s: float) -> None:
        self._settings = settings
        self._client_id = client_id
        self._timeout_s = timeout_s
        self._client: paho.Client | None = None
        self._lock = threading.Lock()

    def _connected(self) -> paho.Client:
        with self._lock:
            if self._client is None:
                try:
                    self._client = connect_publisher(self._settings, client_id=self._client_id,
                                                     protocol5=self._settings.protocol5)
                except OSError as exc:
                    raise DeliveryError(f"MQTT broker {self._settings.host}:{self._settings.port} "
                                        f"unreachable: {exc}") from exc
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.disconnect()
                self._client.loop_stop()
                self._client = None

    def send(self, n: Notification) -> None:
        client = self._connected()
        info = client.publish(n.target, mqtt_message(n.payload, idempotency_key=n.idempotency_key), qos=1)
        try:
            info.wait_for_publish(self._timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise DeliveryError(f"MQTT publish to {n.target} failed: {exc}") from exc
        if not info.is_published():
            raise DeliveryError(f"MQTT broker did not acknowledge {n.target} within {self._timeout_s} s")
