"""A low-CPU QoS 1 load generator: MQTT 3.1.1 over a raw socket, packets pre-encoded in bulk.

paho spends ~25 µs of Python per publish, which on 2 cores would measure the publisher, not the
ingest. Here one ``sendall`` carries thousands of pre-built PUBLISH packets and, between writes, the
same thread counts the 4-byte PUBACKs, so the generator knows exactly how many the broker accepted
(``mosquitto_pub -l`` exits before its QoS 1 messages are acknowledged, so it cannot be used).

Run as ``python -m bench.ingest.publisher`` (one process per share of the equipment; see __main__).
"""

from __future__ import annotations

import argparse
import functools
import json
import select
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

_PUBACK = 0x40


@functools.cache  # a run's packets come in a few lengths
def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(s: bytes) -> bytes:
    return len(s).to_bytes(2, "big") + s


_PACKET_IDS = [i.to_bytes(2, "big") for i in range(65_536)]


def _publish_pieces(name: bytes, payload: bytes, packet_id: int) -> tuple[bytes, ...]:
    """One PUBLISH (QoS 1) packet in pieces, to be joined with others: ``name`` is the topic, length-prefixed."""
    return b"\x32", _remaining_length(len(name) + 2 + len(payload)), name, _PACKET_IDS[packet_id], payload


def publish_packet(topic: bytes, payload: bytes, packet_id: int) -> bytes:
    """One PUBLISH (QoS 1) packet."""
    return b"".join(_publish_pieces(_utf8(topic), payload, packet_id))


class RawPublisher:
    """One MQTT 3.1.1 connection publishing at QoS 1 with at most ``window`` messages unacknowledged."""

    def __init__(self, host: str, port: int, client_id: str, *, window: int = 20_000) -> None:
        if not 0 < window < 65_000:
            raise ValueError("window must be below the 65,535 packet ids")
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cid = client_id.encode()
        # CONNECT: protocol MQTT 3.1.1, clean session, keepalive 0 (no pings needed while we stream).
        var = _utf8(b"MQTT") + bytes([4, 0x02]) + (0).to_bytes(2, "big") + _utf8(cid)
        self.sock.sendall(b"\x10" + _remaining_length(len(var)) + var)
        connack = self._recv_exact(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"broker refused the connection: CONNACK {connack.hex()}")
        self.sent = 0
        self.acked = 0
        self._window = window
        self._next_id = 1
        self._topics: dict[bytes, bytes] = {}  # topic → its length-prefixed form
        self._pending = b""  # the start of a PUBACK whose rest has not come yet

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def _take_acks(self, wait_s: float = 0.0) -> None:
        """Count the PUBACKs that have come, waiting up to ``wait_s`` for the first.

        On the publishing thread, between writes: a reader thread of its own woke for every few
        acks and took the GIL from the writer, which cost more than building the packets.
        """
        if wait_s and not select.select([self.sock], [], [], wait_s)[0]:
            return
        try:
            chunk = self.sock.recv(262_144, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        if not chunk:
            raise ConnectionError("broker closed the connection")
        pending = self._pending + chunk
        if pending[0] != _PUBACK:
            raise RuntimeError(f"unexpected packet from broker: {pending[:8].hex()}")
        whole = len(pending) // 4 * 4
        self.acked += whole // 4
        self._pending = pending[whole:]

    def publish_many(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        """Send ``messages`` (topic, payload) in one write, waiting for window space first.

        The packets' pieces (`_publish_pieces`, as `publish_packet` joins them) go into one join: a few
        µs a message, so the publisher measures the broker and the workers, not itself.
        """
        while self.sent - self.acked + len(messages) > self._window:
            self._take_acks(1.0)
        pieces: list[bytes] = []
        add = pieces.extend
        topics = self._topics
        pid = self._next_id
        for topic, payload in messages:
            name = topics.get(topic)
            if name is None:
                name = topics[topic] = _utf8(topic)
            add(_publish_pieces(name, payload, pid))
            pid = pid + 1 if pid < 65_535 else 1
        self._next_id = pid
        self.sent += len(messages)
        self.sock.sendall(b"".join(pieces))
        self._take_acks()

    def wait_acked(self, timeout: float) -> bool:
        """Whether the broker acknowledged every message sent within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.acked < self.sent and (left := deadline - time.monotonic()) > 0:
            self._take_acks(min(left, 0.5))
        return self.acked >= self.sent

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        finally:
            self.sock.close()


# Payload templates: plausible, in-range values so the alert engine does real work without storms.
ELEVATOR_VALUES = b'"service_mode":1,"car_moving":1,"direction":1,"door_zone":0,"floor":%d,"door_locked":1,' \
                  b'"passenger_present":1,"speed":%d.5'
BOILER_VALUES = b'"drum_pressure":0.%d,"drum_level":%d,"steam_temp":170,"steam_flow":2.5,"feedwater_temp":90,' \
                b'"feedwater_pressure":0.9,"furnace_temp":850,"flue_gas_o2":4.5'


def _values(category: str, i: int) -> bytes:
    return ELEVATOR_VALUES % (i % 20 + 1, i % 2) if category == "3000" else BOILER_VALUES % (i % 5 + 3, i % 40 - 20)


VARIANTS = 40  # the values above repeat every 40 instants
# Per category and variant, an entry's end after its time: ',"values":{...}}'.
_CLOSINGS = {category: [b',"values":{' + _values(category, v) + b"}}" for v in range(VARIANTS)]
             for category in ("1000", "2000", "3000")}


def entry(code: bytes, category: str, ts: int, i: int) -> bytes:
    """One equipment's 8 readings at ``ts`` as a JSON object."""
    return b'{"equipment":"%s","ts":%d%s' % (code, ts, _CLOSINGS[category][i % VARIANTS])


def _slot_parts(eqs: list[tuple[bytes, str]]) -> list[tuple[bytes, list[bytes]]]:
    """A message's payload around its time: (text before each entry's time, that entry's closings)."""
    return [(b'%s{"equipment":"%s","ts":' % (b'{"readings":[' if k == 0 else b",", code), _CLOSINGS[category])
            for k, (code, category) in enumerate(eqs)]


def payload(parts: list[tuple[bytes, list[bytes]]], stamp: bytes, i: int) -> bytes:
    """A telemetry payload from `_slot_parts`: every entry at time ``stamp``, its values the ``i``-th variant."""
    v = i % VARIANTS
    return b"".join([piece for before, closings in parts for piece in (before, stamp, closings[v])]) + b"]}"


def run(args: argparse.Namespace) -> dict[str, float]:
    """Publish for ``args.duration`` seconds at ``args.rate`` messages/s; report what was acknowledged."""
    plan = json.loads(Path(args.plan).read_text(encoding="utf-8"))
    groups: list[tuple[bytes, list[tuple[bytes, str]]]] = [
        (g["topic"].encode(), [(e[0].encode(), e[1]) for e in g["equipment"]]) for g in plan["groups"]]
    per_message = args.per_message
    # A message carries ``per_message`` equipment of one gateway; slots cycle over all of them. Each
    # slot's payload is laid out beforehand around its time, so a message costs a join.
    slots: list[tuple[bytes, list[tuple[bytes, list[bytes]]]]] = []
    readings = 0
    for topic, eqs in groups:
        for k in range(0, len(eqs), per_message):
            slots.append((topic, _slot_parts(eqs[k:k + per_message])))
            readings += 8 * len(eqs[k:k + per_message])
    host, port = args.host, args.port
    pub = RawPublisher(host, port, args.client_id, window=args.window)
    last_ts = [0] * len(slots)
    chunk = max(1, min(2000, int(args.rate * 0.01) or 1))
    started = time.monotonic()
    cpu0 = time.process_time()
    i = 0
    deadline = started + args.duration
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        due = int((now - started) * args.rate)
        if due - i < chunk:  # a chunk at a time (10 ms of messages): a write and a wake-up per message cost more
            time.sleep((i + chunk - due) / args.rate)
            continue
        n = min(chunk, due - i)
        wall_ms = int(time.time() * 1000)
        wall = b"%d" % wall_ms
        batch = []
        for j in range(i, i + n):
            s = j % len(slots)
            ts = max(wall_ms, last_ts[s] + 1)  # strictly increasing per equipment: every reading distinct
            last_ts[s] = ts
            stamp = wall if ts == wall_ms else b"%d" % ts
            topic, parts = slots[s]
            batch.append((topic, payload(parts, stamp, j)))
        pub.publish_many(batch)
        i += n
    sent_s = time.monotonic() - started
    ok = pub.wait_acked(120)
    elapsed = time.monotonic() - started
    pub.close()
    return {"sent": pub.sent, "acked": pub.acked, "all_acked": ok, "send_s": round(sent_s, 3),
            "elapsed_s": round(elapsed, 3), "readings": int(readings / len(slots) * pub.sent),
            "cpu_s": round(time.process_time() - cpu0, 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--plan", required=True, help="JSON: {groups: [{topic, equipment: [[code, category]]}]}")
    parser.add_argument("--rate", type=float, required=True, help="messages per second")
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--per-message", type=int, default=1)
    parser.add_argument("--client-id", default="bench-pub")
    parser.add_argument("--window", type=int, default=20_000)
    result = run(parser.parse_args(argv))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
