"""Many gateway connections in one thread: paho clients driven by one selector (the external-loop API).

A paho client with ``loop_start()`` costs a thread; 2,000 gateways would be 2,000 threads. Here every
client's socket sits in one ``selectors`` loop that the caller services (`MqttMux.service`): reads
(CONNACK, PUBACK, PINGRESP), pending writes and keep-alives. Publishing writes straight to the socket
(paho does that when no loop thread runs). Each connection has its own client id, its retained
``online`` status and its last will (both only when the run owns the gateways' presence:
`simulators.identity`); `drop` ends one without a DISCONNECT so the broker publishes that will, as it
would for a gateway that lost power.

A connection lost otherwise (the broker restarted, dropped it, or another client took its id over) is
reconnected with back-off (about 1 s doubling to 30 s, jittered; reset once a connection has held for
30 s), for as long as the run lasts: what is published meanwhile waits in paho's queue and goes out
after the reconnection, and `on_reconnected` lets the owner say ``online`` again.

QoS 1 throughout: `pending` counts messages published but not yet acknowledged by the broker.
"""

from __future__ import annotations

import logging
import random
import selectors
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from safewatch.retry import backoff
from safewatch.settings import MqttSettings
from simulators.gateway import Outgoing

log = logging.getLogger(__name__)

#: A connection that held this long is healthy again: the next loss starts the back-off afresh.
STABLE_S = 30.0
#: What `publish` may answer for a message paho keeps: sent, or held for after the connection is restored
#: (none yet, or lost while writing this one: paho re-sends it, unacknowledged, on the next CONNACK).
QUEUED = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN, MQTTErrorCode.MQTT_ERR_CONN_LOST)
#: MQTT v5 DISCONNECT reason "session taken over": another client connected with the same client id.
SESSION_TAKEN_OVER = 0x8E


def reconnect_delays() -> Iterator[float]:
    """Seconds before each attempt to restore a lost connection: 1, 2, 4 … 30."""
    return backoff(initial_s=1.0, factor=2.0, max_s=30.0)


class MqttMux:
    """Gateway connections multiplexed over one selector; not thread-safe (one thread drives it)."""

    def __init__(self, settings: MqttSettings, *, client_prefix: str = "sim", protocol5: bool = True,
                 max_inflight: int = 1000, on_reconnected: Callable[[str], None] | None = None) -> None:
        self._settings = settings
        self._on_reconnected = on_reconnected
        self._prefix = client_prefix
        self._protocol5 = protocol5
        self._max_inflight = max_inflight
        self._selector = selectors.DefaultSelector()
        self.clients: dict[str, paho.Client] = {}
        self._connected: set[str] = set()
        self._dirty: set[str] = set()  # clients that may have unwritten bytes
        self._last_misc = 0.0
        self._dropped: set[str] = set()  # dropped on purpose (a simulated fault): not restored by the mux
        self._quiet: set[str] = set()  # reconnected on purpose: the gateway says online itself
        self._retry_at: dict[str, float] = {}  # lost connections → when to try again (monotonic)
        self._delays: dict[str, Iterator[float]] = {}
        self._up_since: dict[str, float] = {}
        self._lost_since: dict[str, float] = {}
        self._closing = False
        self.pending = 0  # QoS 1 messages published and not yet acknowledged
        self.published = 0
        self.acked = 0
        self.drops = 0
        self.reconnects = 0  # lost connections restored

    # -- connections ------------------------------------------------------------------------
    def client_id(self, gateway_id: str) -> str:
        return f"{self._prefix}-{gateway_id}"

    def connect(self, gateways: Iterable[tuple[str, tuple[str, bytes] | None]], *, timeout_s: float = 60.0) -> None:
        """Connect every (gateway id, last will or None) and wait for all CONNACKs."""
        for gateway_id, will in gateways:
            protocol = MQTTProtocolVersion.MQTTv5 if self._protocol5 else MQTTProtocolVersion.MQTTv311
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id(gateway_id),
                                 protocol=protocol, userdata=gateway_id)
            user, password = self._settings.credentials
            if user:
                client.username_pw_set(user, password)
            if will is not None:
                client.will_set(will[0], will[1], qos=1, retain=True)
            client.max_inflight_messages_set(self._max_inflight)
            client.max_queued_messages_set(0)
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
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
        self._dropped.add(gateway_id)
        self._retry_at.pop(gateway_id, None)
        self.drops += 1
        if self._protocol5:  # reason 0x04 "disconnect with will message"
            client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
        else:
            sock = cast(socket.socket | None, client.socket())  # paho's own TCP socket, typed as its protocol
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
                client.loop_read()

    def reconnect(self, gateway_id: str, *, timeout_s: float = 30.0) -> None:
        """Reconnect a gateway dropped on purpose; a broker out of reach is retried with back-off, not raised."""
        self._dropped.discard(gateway_id)
        self._quiet.add(gateway_id)
        if self._try_reconnect(gateway_id):
            deadline = time.monotonic() + timeout_s
            while gateway_id not in self._connected and gateway_id not in self._retry_at \
                    and time.monotonic() < deadline:
                self.service(0.05)

    def close(self) -> None:
        """Disconnect cleanly (no last will: a stopped simulator leaves the statuses as they were)."""
        self._closing = True
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
        """Publish at QoS 1; while the connection is down the message waits in paho and goes after reconnecting."""
        info = self.clients[gateway_id].publish(topic, payload, qos=1, retain=retain)
        if info.rc not in QUEUED:
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
        for gateway_id, due in list(self._retry_at.items()):
            if now >= due:
                del self._retry_at[gateway_id]
                self._try_reconnect(gateway_id)

    def flush(self, timeout_s: float = 30.0) -> int:
        """Service until every message is acknowledged; return how many are still unacknowledged."""
        deadline = time.monotonic() + timeout_s
        while self.pending > 0 and time.monotonic() < deadline:
            self.service(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.pending

    def wait(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout_s:.0f} s; is the broker at "
                                   f"{self._settings.host}:{self._settings.port} up and accepting connections?")
            self.service(0.05)

    # -- lost connections -------------------------------------------------------------------
    def _try_reconnect(self, gateway_id: str) -> bool:
        """Open the connection again (CONNACK follows in `service`); False, with a retry planned, when refused."""
        try:
            self.clients[gateway_id].reconnect()
        except OSError as exc:  # the broker is out of reach: try again later
            self._plan_retry(gateway_id, str(exc))
            return False
        return True

    def _plan_retry(self, gateway_id: str, reason: str) -> None:
        if self._closing or gateway_id in self._dropped or gateway_id in self._retry_at:
            return
        now = time.monotonic()
        up_since = self._up_since.pop(gateway_id, None)
        if gateway_id not in self._delays or (up_since is not None and now - up_since >= STABLE_S):
            self._delays[gateway_id] = reconnect_delays()  # it had held (or never failed): start afresh
        delay = next(self._delays[gateway_id]) * random.uniform(0.5, 1.0)  # jitter: not all gateways at once
        self._retry_at[gateway_id] = now + delay
        if gateway_id not in self._lost_since:  # logged once per outage; its end is logged once too
            self._lost_since[gateway_id] = now
            log.warning("gateway connection lost; reconnecting with back-off",
                        extra={"gateway_id": gateway_id, "client_id": self.client_id(gateway_id), "reason": reason,
                               "retry_in_s": round(delay, 1)})

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

    def _on_socket_open(self, client: paho.Client, gateway_id: str, sock: paho.SocketLike) -> None:
        self._selector.register(sock, selectors.EVENT_READ, client)

    def _on_socket_close(self, client: paho.Client, gateway_id: str, sock: paho.SocketLike) -> None:
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
        self._up_since[gateway_id] = time.monotonic()
        lost = self._lost_since.pop(gateway_id, None)
        quiet = gateway_id in self._quiet
        self._quiet.discard(gateway_id)
        if lost is None:
            return
        self.reconnects += 1
        log.info("gateway connection restored", extra={"gateway_id": gateway_id,
                                                       "down_s": round(time.monotonic() - lost, 1)})
        if self._on_reconnected is not None and not quiet:
            self._on_reconnected(gateway_id)

    def _on_disconnect(self, _client: paho.Client, gateway_id: str, _flags: object, reason: ReasonCode,
                       _props: object = None) -> None:
        self._connected.discard(gateway_id)
        why = str(reason)
        if getattr(reason, "value", None) == SESSION_TAKEN_OVER:
            why += f" (another client connected as {self.client_id(gateway_id)}: is a second simulator running?)"
        self._plan_retry(gateway_id, why)

    def _on_publish(self, _client: paho.Client, _gateway_id: str, _mid: int, _reason: object,
                    _props: object = None) -> None:
        self.pending -= 1
        self.acked += 1
