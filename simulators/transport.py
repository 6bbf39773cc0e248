"""Many gateway connections in one thread: paho clients driven by one selector (the external-loop API).

A paho client with ``loop_start()`` costs a thread; 2,000 gateways would be 2,000 threads. Here every
client's socket sits in one ``selectors`` loop that the caller services (`MqttMux.service`): reads
(CONNACK, PUBACK, PINGRESP), pending writes and keep-alives. Publishing writes straight to the socket
(paho does that when no loop thread runs). Each connection has its own client id, its retained
``online`` status and its last will; `drop` ends one without a DISCONNECT so the broker publishes
that will, as it would for a gateway that lost power.

QoS 1 throughout: `pending` counts messages published but not yet acknowledged by the broker.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from collections.abc import Iterable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from safewatch.settings import MqttSettings
from simulators.gateway import Outgoing

log = logging.getLogger(__name__)


class MqttMux:
    """Gateway connections multiplexed over one selector; not thread-safe (one thread drives it)."""

    def __init__(self, settings: MqttSettings, *, client_prefix: str = "sim", protocol5: bool = True,
                 max_inflight: int = 1000) -> None:
        self._settings = settings
        self._prefix = client_prefix
        self._protocol5 = protocol5
        self._max_inflight = max_inflight
        self._selector = selectors.DefaultSelector()
        self.clients: dict[str, paho.Client] = {}
        self._connected: set[str] = set()
        self._dirty: set[str] = set()  # clients that may have unwritten bytes
        self._last_misc = 0.0
        self.pending = 0  # QoS 1 messages published and not yet acknowledged
        self.published = 0
        self.acked = 0
        self.drops = 0

    # -- connections ------------------------------------------------------------------------
    def connect(self, gateways: Iterable[tuple[str, tuple[str, bytes]]], *, timeout_s: float = 60.0) -> None:
        """Connect every (gateway id, last will) and wait for all CONNACKs."""
        for gateway_id, (will_topic, will_payload) in gateways:
            protocol = MQTTProtocolVersion.MQTTv5 if self._protocol5 else MQTTProtocolVersion.MQTTv311
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{self._prefix}-{gateway_id}",
                                 protocol=protocol, userdata=gateway_id)
            user, password = self._settings.credentials
            if user:
                client.username_pw_set(user, password)
            client.will_set(will_topic, will_payload, qos=1, retain=True)
            client.max_inflight_messages_set(self._max_inflight)
            client.max_queued_messages_set(0)
            client.on_connect = self._on_connect
            client.on_publish = self._on_publish
            client.on_socket_open = self._on_socket_open
            client.on_socket_close = self._on_socket_close
            self.clients[gateway_id] = client
            client.connect(self._settings.host, self._settings.port, self._settings.keepalive_s)
            self.service(0)
        self.wait(lambda: len(self._connected) == len(self.clients), timeout_s, "every gateway connected")

    def drop(self, gateway_id: str) -> None:
        """End a connection without a clean DISCONNECT: the broker publishes the gateway's last will."""
        client = self.clients[gateway_id]
        self._connected.discard(gateway_id)
        self.drops += 1
        if self._protocol5:  # reason 0x04 "disconnect with will message"
            client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
        else:
            sock = client.socket()
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
                client.loop_read()

    def reconnect(self, gateway_id: str, *, timeout_s: float = 30.0) -> None:
        client = self.clients[gateway_id]
        client.reconnect()
        self.wait(lambda: gateway_id in self._connected, timeout_s, f"gateway {gateway_id} reconnected")

    def close(self) -> None:
        """Disconnect cleanly (no last will: a stopped simulator leaves the statuses as they were)."""
        for client in self.clients.values():
            if client.is_connected():
                client.disconnect()
        self.service(0)
        for client in self.clients.values():
            sock = client.socket()
            if sock is not None:
                client.loop_read()
        self.clients.clear()
        self._selector.close()

    # -- traffic ----------------------------------------------------------------------------
    def send(self, outgoing: Iterable[Outgoing]) -> None:
        """Carry out what the gateways decided."""
        for o in outgoing:
            if o.action == "publish":
                self.publish(o.gateway_id, o.topic, o.payload, retain=o.retain)
            elif o.action == "drop":
                self.drop(o.gateway_id)
            elif o.action == "reconnect":
                self.reconnect(o.gateway_id)

    def publish(self, gateway_id: str, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.clients[gateway_id].publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise RuntimeError(f"publish on {topic} failed ({info.rc.name}); is the broker reachable?")
        self.pending += 1
        self.published += 1
        self._dirty.add(gateway_id)

    def service(self, timeout_s: float) -> None:
        """One pass: write what is waiting, read what arrived (waiting up to ``timeout_s``), keep alive."""
        for gateway_id in list(self._dirty):
            client = self.clients.get(gateway_id)
            if client is None or not client.want_write():
                self._dirty.discard(gateway_id)
                self._watch(gateway_id, write=False)
            else:
                client.loop_write()
                self._watch(gateway_id, write=client.want_write())
        for key, mask in self._selector.select(timeout_s):
            client = key.data
            if mask & selectors.EVENT_READ:
                client.loop_read(max_packets=100)
            if mask & selectors.EVENT_WRITE:
                client.loop_write()
        now = time.monotonic()
        if now - self._last_misc >= 1.0:
            self._last_misc = now
            for client in self.clients.values():
                client.loop_misc()

    def flush(self, timeout_s: float = 30.0) -> int:
        """Service until every message is acknowledged; return how many are still unacknowledged."""
        deadline = time.monotonic() + timeout_s
        while self.pending > 0 and time.monotonic() < deadline:
            self.service(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.pending

    def wait(self, done: object, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout_s:.0f} s; is the broker at "
                                   f"{self._settings.host}:{self._settings.port} up and accepting connections?")
            self.service(0.05)

    # -- paho callbacks ---------------------------------------------------------------------
    def _watch(self, gateway_id: str, *, write: bool) -> None:
        client = self.clients[gateway_id]
        sock = client.socket()
        if sock is None:
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if write else 0)
        try:
            self._selector.modify(sock, events, client)
        except (KeyError, ValueError):
            pass

    def _on_socket_open(self, client: paho.Client, gateway_id: str, sock: socket.socket) -> None:
        self._selector.register(sock, selectors.EVENT_READ, client)

    def _on_socket_close(self, client: paho.Client, gateway_id: str, sock: socket.socket) -> None:
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass

    def _on_connect(self, client: paho.Client, gateway_id: str, _flags: object, reason: ReasonCode,
                    _props: object = None) -> None:
        if reason.is_failure:
            log.error("broker refused a gateway connection", extra={"gateway_id": gateway_id, "reason": str(reason)})
            return
        self._connected.add(gateway_id)
        self._dirty.add(gateway_id)  # paho re-sends unacknowledged messages after a reconnection

    def _on_publish(self, _client: paho.Client, _gateway_id: str, _mid: int, _reason: object,
                    _props: object = None) -> None:
        self.pending -= 1
        self.acked += 1
