"""paho-mqtt reading many packets per socket read, for the workers' subscriptions.

paho reads a packet with three to five ``recv`` calls (the command byte, the length a byte at a time,
the body) and goes back to ``select`` after each packet. At QoS 1 with small telemetry messages those
system calls were a third of a worker's receiving CPU. `BufferedClient` hands paho a socket that reads
up to 256 KiB at once and serves paho's small reads from that buffer, and drains every packet the
buffer holds before returning to ``select``. Nothing else about paho changes: the same packets,
callbacks, flow control and acknowledgements.

It relies on two things of paho 2.x: ``Client._create_socket`` (the one place a connection's socket
is made; the websocket transport wraps its socket the same way) and the ``pending()`` check its loop
makes on the socket (for TLS, whose own buffer ``select`` cannot see). Where ``_create_socket`` is
missing (another paho), `make_client` returns paho's own client unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024


class BufferedSocket:
    """A socket proxy whose ``recv`` serves small reads from one large read (everything else passes through)."""

    __slots__ = ("_data", "_pos", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0

    def recv(self, n: int) -> bytes:
        """At most ``n`` bytes: buffered ones first; raises BlockingIOError when none are ready, b"" at EOF."""
        data, pos = self._data, self._pos
        if pos < len(data):
            out = data[pos:pos + n]
            self._pos = pos + len(out)
            return out
        data = self._sock.recv(max(n, READ_SIZE))
        if len(data) <= n:
            self._data, self._pos = b"", 0
            return data
        self._data, self._pos = data, n
        return data[:n]

    def pending(self) -> int:
        """Bytes received and not yet read (ours, and TLS's own where the socket is TLS)."""
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._data) - self._pos + inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class BufferedClient(paho.Client):
    """paho's client with a `BufferedSocket`, reading every buffered packet before the next ``select``."""

    def _create_socket(self) -> Any:
        return BufferedSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            sock = self._sock
            if sock is None or not sock.pending():
                break
            rc = super().loop_read(max_packets)
        return rc


def make_client(**kwargs: Any) -> paho.Client:
    """A paho client for a worker's subscription: `BufferedClient` where this paho allows it."""
    if hasattr(paho.Client, "_create_socket"):
        return BufferedClient(**kwargs)
    log.warning("paho-mqtt without Client._create_socket: reading one packet per socket read",
                extra={"paho": getattr(paho, "__version__", "?")})
    return paho.Client(**kwargs)
