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
PACKETS_PER_WRITE = 256  # packets read, at most, before paho's loop writes what is queued (the PUBACKs)


class BufferedSocket:
    """A socket proxy whose ``recv`` serves small reads from one large read (everything else passes through).

    It reads into one buffer of its own, reused: a fresh 256 KiB ``bytes`` for every read, shrunk to
    what arrived, fragmented the heap (measured: +56 MiB of RSS over 200,000 messages).
    """

    __slots__ = ("_buf", "_end", "_pos", "_sock", "_view", "fills")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = bytearray(READ_SIZE)
        self._view = memoryview(self._buf)
        self._pos = self._end = 0
        self.fills = 0  # reads from the socket itself

    def recv(self, n: int) -> bytes:
        """At most ``n`` bytes: buffered ones first; raises BlockingIOError when none are ready, b"" at EOF."""
        pos = self._pos
        if pos < self._end:
            stop = min(self._end, pos + n)
            self._pos = stop
            return bytes(self._view[pos:stop])
        self.fills += 1
        if n >= READ_SIZE or not hasattr(self._sock, "recv_into"):
            return self._sock.recv(n)  # a read as large as the buffer gains nothing from it
        got = self._sock.recv_into(self._buf)
        take = min(n, got)
        self._pos, self._end = take, got
        return bytes(self._view[:take])

    def pending(self) -> int:
        """Bytes received and not yet read (ours, and TLS's own where the socket is TLS)."""
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return self._end - self._pos + inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class BufferedClient(paho.Client):
    """paho's client with a `BufferedSocket`, reading every buffered packet before the next ``select``."""

    def _create_socket(self) -> Any:
        return BufferedSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Read the packets already buffered, up to `PACKETS_PER_WRITE`, then let paho's loop write.

        Never more: under a backlog the socket always has more, and a loop that kept reading would not
        send the PUBACKs queued meanwhile (measured: 160,000 of them, 20 MiB, held back).
        """
        sock = self._sock
        fills = sock.fills if isinstance(sock, BufferedSocket) else -1
        rc = super().loop_read(max_packets)
        for _ in range(PACKETS_PER_WRITE - 1):
            sock = self._sock
            if (rc != MQTTErrorCode.MQTT_ERR_SUCCESS or not isinstance(sock, BufferedSocket)
                    or sock.fills > fills + 1 or not sock.pending()):
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
