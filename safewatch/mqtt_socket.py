"""paho-mqtt as the workers' subscriptions use it: packets read in bulk, PUBLISH decoded in runs,
PUBACKs written a batch at a time, a clean stop closed cleanly.

paho reads a packet with three to five ``recv`` calls (the command byte, the length a byte at a time,
the body) and goes back to ``select`` after each packet. At QoS 1 with small telemetry messages those
system calls were a third of a worker's receiving CPU. `BufferedClient` hands paho a socket that reads
up to 256 KiB at once and serves paho's small reads from that buffer, and drains every packet the
buffer holds before returning to ``select``. On top of that it decodes the whole PUBLISH packets in
its buffer itself (`BufferedClient.publish_sink`), queues a batch's PUBACKs as one packet
(`BufferedClient.ack_many`), and after its own DISCONNECT waits for the broker's close. paho keeps
the connection, its state, and every packet these paths leave to it.

It relies on these things of paho 2.x: ``Client._create_socket`` (the one place a connection's socket
is made; the websocket transport wraps its socket the same way), the ``pending()`` check its loop
makes on the socket (for TLS, whose own buffer ``select`` cannot see), ``_in_packet``,
``_packet_queue`` and ``_sock_close``. Where ``_create_socket`` is missing (another paho),
`make_client` returns paho's own client unchanged.
"""

from __future__ import annotations

import logging
import select
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode, _ConnectionState

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
PACKETS_PER_WRITE = 256  # packets read, at most, before paho's loop writes what is queued (the PUBACKs)
CLOSE_WAIT_S = 2.0  # a deliberate disconnect waits at most this long for the broker to close its side


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

    def buffered(self) -> memoryview:
        """The bytes read from the socket and not yet served (a view: valid until the next read)."""
        return self._view[self._pos:self._end]

    def consume(self, n: int) -> None:
        """Mark ``n`` of the `buffered` bytes as served."""
        self._pos += n

    def pending(self) -> int:
        """Bytes received and not yet read (ours, and TLS's own where the socket is TLS)."""
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return self._end - self._pos + inner

    def drain_close(self, timeout: float) -> None:
        """Half-close (our FIN after everything written), then read and drop until the peer closes or
        ``timeout`` passes; the caller closes the socket."""
        deadline = time.monotonic() + timeout
        try:
            self._sock.shutdown(socket.SHUT_WR)
            while (left := deadline - time.monotonic()) > 0:
                readable, _, _ = select.select([self._sock], [], [], left)
                if readable and not self._sock.recv(READ_SIZE):
                    return  # the broker's FIN
        except (OSError, ValueError):
            return  # already reset or closed: nothing left to save

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


PublishSink = Callable[[str, bytes, int, int], None]  # (topic, payload, packet id, qos) of one PUBLISH


class BufferedClient(paho.Client):
    """paho's client with a `BufferedSocket`, reading every buffered packet before the next ``select``.

    With a `publish_sink` set, the PUBLISH packets at QoS 0 and 1 that lie whole in the buffer are
    decoded here and handed to it, a run at a time, instead of one by one through paho's
    ``_packet_read`` (three to five reads and a dict of state a packet), ``decode_publish`` (a
    ``Properties`` object a packet) and ``on_message`` (an ``MQTTMessage``, two locks and a topic
    match). That was about half of a worker's receiving CPU. Everything else (a packet split over
    two reads, QoS 2, every other packet type, anything malformed) goes paho's way, in order: the
    sink's run is flushed before paho reads the next packet. Acks stay manual (`Client.ack`).
    """

    publish_sink: PublishSink | None = None
    publish_flush: Callable[[], None] | None = None  # called after each run the sink was given
    decoded_in_bulk = 0  # PUBLISH packets handed to the sink (the rest went paho's way)

    def _create_socket(self) -> Any:
        return BufferedSocket(super()._create_socket())

    def _sock_close(self) -> None:
        """After our DISCONNECT, close as TCP means it: send our FIN, then read until the broker's.

        paho closes at once. Anything the broker had sent that we had not read then makes the kernel
        answer with a reset, and a reset discards what the broker had received and not yet read: the
        last PUBACKs of a worker that acks its batch and stops (measured: up to 198 of 200 redelivered
        after such a stop). A lost connection is closed at once, as before.
        """
        sock = self._sock
        if self._state == _ConnectionState.MQTT_CS_DISCONNECTING and isinstance(sock, BufferedSocket):
            sock.drain_close(CLOSE_WAIT_S)
        super()._sock_close()

    def ack_many(self, mids: Sequence[int]) -> MQTTErrorCode:
        """Acknowledge QoS 1 messages by packet id, in order: every PUBACK in one out-packet.

        ``Client.ack`` queues a 4-byte packet and wakes the network thread (a system call) for each,
        and the thread writes each with its own ``send``: two system calls and a dict a message.
        Here a batch costs one of each. The bytes are the ones ``Client.ack(mid, 1)`` queues
        (``_send_command_with_mid``: command, remaining length 2, packet id, for v5 as for 3.1.1;
        v5 lets a PUBACK leave out its reason code and properties when they are "success" and none).
        Like ``Client.ack``, it sends nothing unless ``manual_ack`` is on.

        paho's ``_packet_write`` treats an out-packet as opaque bytes: a partial write keeps its
        position and resumes there, and the only handling after a whole write is for PUBLISH at
        QoS 0 and DISCONNECT, so a run of PUBACKs under the command PUBACK is written exactly like
        one. A reconnect drops it with the rest of the queue, as it drops paho's own PUBACKs.
        """
        if not mids or not self._manual_ack:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        if min(mids) < 0 or max(mids) > 0xFFFF:  # would spill into the next PUBACK (paho's pack refuses it too)
            raise ValueError(f"a packet id is 0..65535, not {min(mids)}..{max(mids)}")
        self._easy_log(paho.MQTT_LOG_DEBUG, "Sending %d PUBACKs (Mids: %d..%d)", len(mids), mids[0], mids[-1])
        # One big-endian word a PUBACK: its two header bytes over its packet id.
        packet = struct.pack(f">{len(mids)}I", *[_PUBACK_WORD | mid for mid in mids])
        return self._packet_queue(paho.PUBACK, packet, 0, 0)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Read the packets already buffered, up to `PACKETS_PER_WRITE`, then let paho's loop write.

        Never more: under a backlog the socket always has more, and a loop that kept reading would not
        send the PUBACKs queued meanwhile (measured: 160,000 of them, 20 MiB, held back).
        """
        sock = self._sock
        if not isinstance(sock, BufferedSocket):
            return super().loop_read(max_packets)
        fills = sock.fills
        budget = PACKETS_PER_WRITE
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        while budget > 0:
            if self.publish_sink is not None and self._in_packet["command"] == 0:
                taken = self._read_publishes(sock, budget)
                budget -= taken
                if budget <= 0 or (taken and not sock.pending()):
                    break
            rc = super().loop_read(max_packets)  # one packet paho's way, reading the socket if need be
            budget -= 1
            # Named apart: tested inside the condition, `is` would narrow `sock` to paho's type for `_sock`.
            reconnected = self._sock is not sock
            if (rc != MQTTErrorCode.MQTT_ERR_SUCCESS or reconnected or sock.fills > fills + 1
                    or not sock.pending()):
                break
        return rc

    def _read_publishes(self, sock: BufferedSocket, limit: int) -> int:
        """Hand the sink up to ``limit`` whole QoS 0/1 PUBLISH packets from the head of the buffer;
        stop at the first other or partial packet. Returns how many were handed."""
        sink = self.publish_sink
        assert sink is not None
        view = sock.buffered()
        end = len(view)
        v5 = self._protocol == paho.MQTTv5
        i = taken = 0
        while taken < limit and i < end:
            header = view[i]
            qos = (header >> 1) & 3
            if header & 0xF0 != _PUBLISH or qos == 2:
                break
            length, j = decode_varint(view, i + 1, end)
            if length < 0 or j + length > end:
                break  # partial (or malformed): paho reads it, and says what is wrong
            body_end = j + length
            k = j + 2 + ((view[j] << 8) | view[j + 1]) if length >= 2 else body_end + 1
            if k == j + 2 or k + (2 if qos else 0) > body_end:
                break  # an empty topic (a v5 alias: we allow none) or a topic past the packet
            try:
                topic = str(view[j + 2:k], "utf-8")
            except UnicodeDecodeError:
                break
            mid = 0
            if qos:
                mid = (view[k] << 8) | view[k + 1]
                k += 2
            if v5:  # the properties: one length, skipped (no alias was allowed, nothing else is used)
                props, k = decode_varint(view, k, body_end)
                if props < 0 or k + props > body_end:
                    break
                k += props
            sink(topic, bytes(view[k:body_end]), mid, qos)
            i = body_end
            taken += 1
        if taken:
            self.decoded_in_bulk += taken
            sock.consume(i)
            with self._msgtime_mutex:
                self._last_bytes_received = paho.time_func()  # paho's keepalive clock
            if self.publish_flush is not None:
                self.publish_flush()
        return taken


_PUBLISH = 0x30
_PUBACK_WORD = (paho.PUBACK << 24) | (2 << 16)  # command, remaining length 2; the packet id below


def decode_varint(view: memoryview, i: int, end: int) -> tuple[int, int]:
    """MQTT's variable byte integer at ``i``: (value, index after it); (-1, i) when cut short or too long."""
    value = 0
    shift = 0
    while i < end and shift <= 21:
        byte = view[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
    return -1, i


def make_client(**kwargs: Any) -> paho.Client:
    """A paho client for a worker's subscription: `BufferedClient` where this paho allows it."""
    if hasattr(paho.Client, "_create_socket"):
        return BufferedClient(**kwargs)
    log.warning("paho-mqtt without Client._create_socket: reading one packet per socket read",
                extra={"paho": getattr(paho, "__version__", "?")})
    return paho.Client(**kwargs)
