"""MQTT client shell shared by ingest and alerts (paho-mqtt 2.x): subscribe with manual acks.

Why paho: it is the measured-fastest client here that exposes manual acknowledgement
(``manual_ack=True`` + ``Client.ack``), which "ack only after commit" needs (see docs/decisions/mqtt-client.md).

Flow control is MQTT's own: with v5 we announce ``Receive Maximum`` = ``max_inflight``, so the
broker never has more than that many unacknowledged messages out to us. On top of the count, the
payload bytes received and not yet acknowledged are capped (``max_inflight_bytes``): when the cap
is reached the network thread blocks, stops reading the socket, and TCP pushes back to the broker
(which keeps queueing, persistently). A budget is released only by `ack` (after commit), so the
whole unacknowledged set, queued or in the batch in hand, stays within both bounds.

Every delivered message carries the connection *generation* it arrived on. After a reconnect the
broker redelivers everything unacknowledged, so acks for an older generation are not sent:
the redelivered copy is acked instead, and idempotent writes absorb the repeat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from safewatch.mqtt_socket import BufferedClient, make_client
from safewatch.settings import MqttSettings

log = logging.getLogger(__name__)


class Delivery(NamedTuple):
    """One message as received, not yet acknowledged (a tuple: made once per message on the network thread)."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received_at: float  # time.time() at receipt


class InflightWindow:
    """A FIFO of deliveries bounded by count and by unacknowledged payload bytes (thread-safe)."""

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self._items: deque[Delivery] = deque()
        self._max_messages, self._max_bytes = max_messages, max_bytes
        self._unacked_messages = 0
        self._unacked_bytes = 0
        self._cond = threading.Condition()
        self._closed = False
        # How many queued items would satisfy the waiting consumer: `put` wakes it only then, not for
        # every message (a thread switch per message costs more than receiving it).
        self._wanted = 1

    def close(self) -> None:
        """Stop admitting: a `put` blocked on a full window returns (its message, never acked, is redelivered)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def put(self, delivery: Delivery) -> None:
        """Admit one delivery, blocking while the window is full (a lone oversized message still passes)."""
        self.put_many((delivery,))

    def put_many(self, deliveries: Iterable[Delivery]) -> None:
        """`put` each of ``deliveries`` in order, taking the lock once (and waking the consumer once)
        unless the window fills on the way."""
        with self._cond:
            for delivery in deliveries:
                size = len(delivery.payload)
                if not self._admits(size):
                    self._cond.notify_all()  # what is queued may be what the consumer waits for
                    self._cond.wait_for(lambda: self._admits(size))  # noqa: B023 (called before size changes)
                if self._closed:
                    return  # shutting down: the network thread must not wait for a consumer that has stopped
                self._items.append(delivery)
                self._unacked_messages += 1
                self._unacked_bytes += size
            if len(self._items) >= self._wanted:
                self._cond.notify_all()

    def _admits(self, size: int) -> bool:
        """Whether one more message of ``size`` bytes fits (or the window is closed, or empty)."""
        return self._closed or self._unacked_messages == 0 or (
            self._unacked_messages < self._max_messages and self._unacked_bytes + size <= self._max_bytes)

    def take(self, max_messages: int, max_wait_s: float, max_bytes: int | None = None) -> list[Delivery]:
        """Up to ``max_messages`` (and about ``max_bytes`` of payload): wait ``max_wait_s`` for the first,
        then as long again for more."""
        limit = max_bytes if max_bytes is not None else 1 << 62
        with self._cond:
            self._wanted = 1
            if not self._cond.wait_for(lambda: self._items, max_wait_s):
                return []
            deadline = time.monotonic() + max_wait_s
            batch: list[Delivery] = []
            size = 0
            try:
                while True:
                    while self._items and len(batch) < max_messages and size < limit:
                        batch.append(self._items.popleft())
                        size += len(batch[-1].payload)
                    remaining = deadline - time.monotonic()
                    if len(batch) >= max_messages or size >= limit or remaining <= 0 or self._closed:
                        break
                    # Sleep until the rest of the batch is there (or the deadline), not once per message.
                    # A window full of bytes before the count is reached waits out the deadline: bounded.
                    can_come = self._max_messages - self._unacked_messages  # the window admits no more than this
                    if can_come <= 0:
                        break
                    self._wanted = min(max_messages - len(batch), can_come)
                    self._cond.wait_for(lambda: len(self._items) >= self._wanted or self._closed, remaining)
            finally:
                self._wanted = 1
            return batch

    def oldest_received_at(self) -> float | None:
        """When the oldest delivery still queued was received (``time.time()``); None when none is."""
        with self._cond:
            return self._items[0].received_at if self._items else None

    def release(self, deliveries: Iterable[Delivery]) -> None:
        """Give back the budget of deliveries that are done with (acknowledged, or stale)."""
        with self._cond:
            for d in deliveries:
                self._unacked_messages -= 1
                self._unacked_bytes -= len(d.payload)
            self._cond.notify_all()

    def queued(self) -> int:
        with self._cond:
            return len(self._items)

    def unacked(self) -> tuple[int, int]:
        """(messages, payload bytes) received and not yet released."""
        with self._cond:
            return self._unacked_messages, self._unacked_bytes


class Subscriber:
    """A persistent-session, manual-ack subscriber feeding a bounded queue.

    Use as a context manager; read with `get_batch`, then `ack` what was committed.
    """

    def __init__(self, settings: MqttSettings, *, client_id: str, topic_filters: Iterable[str],
                 max_inflight: int, protocol5: bool = True, max_inflight_bytes: int = 64 * 1024 * 1024) -> None:
        self._settings = settings
        self._filters = list(topic_filters)
        self._window = InflightWindow(max_inflight, max_inflight_bytes)
        self._generation = 0
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # set once the broker has acknowledged every filter
        self._pending_subs: set[int | None] = set()  # None: paho could not send that SUBSCRIBE
        self._down_since: float | None = None
        self._closing = False  # our own disconnect: not an outage to report
        self._protocol5 = protocol5
        self._max_inflight = max_inflight
        self._client = make_client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if protocol5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if protocol5 else False,
            manual_ack=True,
        )
        user, password = settings.credentials
        if user:
            self._client.username_pw_set(user, password)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.max_inflight_messages_set(max(20, min(max_inflight, 65535)))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._run: list[Delivery] = []  # PUBLISHes decoded in bulk by the client, not yet in the window
        if isinstance(self._client, BufferedClient):
            self._client.publish_sink = self._on_publish
            self._client.publish_flush = self._flush_run

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Subscriber:
        props = None
        if self._protocol5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self._settings.session_expiry_s
            props.ReceiveMaximum = max(1, min(self._max_inflight, 65535))
        self._client.connect_async(self._settings.host, self._settings.port, self._settings.keepalive_s,
                                   clean_start=False, properties=props)
        self._client.loop_start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        self._window.close()  # else loop_stop waits forever on a network thread blocked by a full window
        self._client.disconnect()
        self._client.loop_stop()

    def wait_subscribed(self, timeout: float) -> bool:
        return self.subscribed.wait(timeout)

    # -- paho callbacks (network thread) ---------------------------------------------------
    def _on_connect(self, client: paho.Client, _userdata: object, _flags: object, reason: object,
                    _props: object = None) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the connection", extra={"reason": str(reason)})
            return
        with self._lock:
            self._generation += 1
        self._pending_subs = {client.subscribe(f, qos=1)[1] for f in self._filters}
        if self._down_since is not None:
            log.info("broker reconnected", extra={"down_s": round(time.monotonic() - self._down_since, 1)})
            self._down_since = None
        else:
            log.info("broker connected", extra={"filters": self._filters})
        self.connected.set()

    def _on_subscribe(self, _client: paho.Client, _userdata: object, mid: int, reasons: Sequence[object],
                      _props: object = None) -> None:
        failed = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if failed:
            log.error("broker refused a subscription", extra={"reasons": failed, "filters": self._filters})
            return
        self._pending_subs.discard(mid)
        if not self._pending_subs:
            log.info("subscribed", extra={"filters": self._filters})
            self.subscribed.set()

    def _on_disconnect(self, _client: paho.Client, _userdata: object, _flags: object, reason: object,
                       _props: object = None) -> None:
        with self._lock:
            # The connection's packet ids die with it: from now on its deliveries are not acked, even
            # before the reconnect's CONNACK gives the next connection its own generation.
            self._generation += 1
        self.connected.clear()
        if self._closing:
            log.info("disconnected from the broker", extra={"filters": self._filters})
            return
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.error("broker connection lost; reconnecting with back-off", extra={"reason": str(reason)})

    def _on_message(self, _client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        # Blocks when the window is full: the back-pressure point (TCP) beyond Receive Maximum.
        self._window.put(Delivery(msg.topic, msg.payload, msg.mid, msg.qos, self._generation, time.time()))

    def _on_publish(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        self._run.append(Delivery(topic, payload, mid, qos, self._generation, time.time()))

    def _flush_run(self) -> None:
        run, self._run = self._run, []
        self._window.put_many(run)  # blocks while the window is full, as `put` does

    # -- consumer side -----------------------------------------------------------------------
    def get_batch(self, max_messages: int, max_wait_s: float, max_bytes: int | None = None) -> list[Delivery]:
        """Up to ``max_messages`` (stopping once ``max_bytes`` of payload are in), waiting at most
        ``max_wait_s`` for the first and then for the rest."""
        return self._window.take(max_messages, max_wait_s, max_bytes)

    def oldest_received_at(self) -> float | None:
        """When the oldest delivery not yet taken was received (``time.time()``); None when none waits."""
        return self._window.oldest_received_at()

    def ack(self, deliveries: Iterable[Delivery]) -> int:
        """Acknowledge committed deliveries of the current connection; return how many were acked.

        Deliveries of an earlier connection are not acked (their packet ids may now name other
        messages); the broker has redelivered them and the redelivered copies are acked instead.
        Either way their window budget is released.
        """
        deliveries = list(deliveries)
        # Under the lock that a lost connection takes to move the generation on: the PUBACKs are queued
        # either before the loss (the reconnect then drops them with paho's queue) or not at all.
        with self._lock:
            due = [d for d in deliveries if d.qos > 0 and d.generation == self._generation]
            client = self._client
            if isinstance(client, BufferedClient):
                # A run of QoS 1 PUBACKs is one out-packet and one wake-up of the network thread; a QoS 2
                # delivery (we subscribe at 1) is acked alone where it stands, so the order is kept.
                run: list[int] = []
                for d in due:
                    if d.qos == 1:
                        run.append(d.mid)
                    else:
                        client.ack_many(run)
                        run = []
                        client.ack(d.mid, d.qos)
                client.ack_many(run)
            else:
                for d in due:  # paho's own client: a queued packet and a wake-up each
                    client.ack(d.mid, d.qos)
        self._window.release(deliveries)
        return len(due)

    def queued(self) -> int:
        """Deliveries received and not yet taken by `get_batch` (the queue depth)."""
        return self._window.queued()

    def unacked(self) -> tuple[int, int]:
        """(messages, payload bytes) received and not yet acknowledged."""
        return self._window.unacked()


def connect_publisher(settings: MqttSettings, *, client_id: str, protocol5: bool = True,
                      will: tuple[str, bytes] | None = None, clean: bool = True) -> paho.Client:
    """A started publisher client (network loop running); ``will`` is (topic, payload), retained."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=MQTTProtocolVersion.MQTTv5 if protocol5 else MQTTProtocolVersion.MQTTv311,
                         clean_session=None if protocol5 else clean)
    user, password = settings.credentials
    if user:
        client.username_pw_set(user, password)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.connect(settings.host, settings.port, settings.keepalive_s)
    client.loop_start()
    return client
