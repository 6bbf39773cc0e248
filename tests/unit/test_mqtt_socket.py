"""The read-buffering socket under paho (safewatch.mqtt_socket) over a real socket pair."""

from __future__ import annotations

import socket
import threading

import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from safewatch.mqtt_socket import READ_SIZE, BufferedClient, BufferedSocket, decode_varint


def pair() -> tuple[BufferedSocket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    return BufferedSocket(a), b


def test_small_reads_come_from_one_large_read_in_order() -> None:
    sock, peer = pair()
    stream = bytes(range(256)) * 40
    peer.sendall(stream)
    got = bytearray()
    sizes = [1, 1, 2, 100, 7, 5000]
    while len(got) < len(stream):
        for n in sizes:
            part = sock.recv(n)
            assert 0 < len(part) <= n
            got += part
            if len(got) == len(stream):
                break
    assert bytes(got) == stream
    assert sock.pending() == 0
    with pytest.raises(BlockingIOError):  # nothing buffered, nothing on the wire: paho's "try again"
        sock.recv(1)


def test_pending_counts_what_is_buffered_and_eof_reads_empty() -> None:
    sock, peer = pair()
    peer.sendall(b"abcdef")
    assert sock.recv(2) == b"ab"
    assert sock.pending() == 4
    assert sock.recv(10) == b"cdef"
    peer.close()
    assert sock.recv(1) == b""  # end of stream, as a plain socket says it


def test_everything_else_passes_through() -> None:
    sock, peer = pair()
    assert sock.fileno() == sock._sock.fileno()
    assert sock.send(b"x") == 1 and peer.recv(1) == b"x"
    peer.sendall(b"y" * 50_000)
    assert sock.recv(1) == b"y" and 0 < sock.pending() < READ_SIZE  # one read took what had arrived
    sock.close()
    assert sock._sock.fileno() == -1


def test_one_read_of_the_socket_serves_many_small_reads() -> None:
    sock, peer = pair()
    peer.sendall(b"z" * 1000)
    parts = [sock.recv(10) for _ in range(100)]
    assert b"".join(parts) == b"z" * 1000
    assert sock.fills == 1  # the loop above it counts these to know when to let paho write


def test_buffered_bytes_can_be_looked_at_and_consumed() -> None:
    sock, peer = pair()
    peer.sendall(b"0123456789")
    assert sock.recv(1) == b"0"  # the first read fills the buffer
    assert bytes(sock.buffered()) == b"123456789"
    sock.consume(4)
    assert bytes(sock.buffered()) == b"56789" and sock.pending() == 5
    assert sock.recv(10) == b"56789"


@pytest.mark.parametrize(("encoded", "value"), [(b"\x00", 0), (b"\x7f", 127), (b"\x80\x01", 128),
                                                (b"\xff\x7f", 16_383), (b"\xff\xff\xff\x7f", 268_435_455)])
def test_variable_byte_integers_decode_as_mqtt_defines_them(encoded: bytes, value: int) -> None:
    view = memoryview(b"\x30" + encoded + b"rest")
    assert decode_varint(view, 1, len(view)) == (value, 1 + len(encoded))


def test_a_cut_or_overlong_variable_byte_integer_is_refused() -> None:
    cut = memoryview(b"\x80\x80")
    assert decode_varint(cut, 0, len(cut))[0] == -1  # more bytes promised than there are: wait for them
    overlong = memoryview(b"\xff\xff\xff\xff\x01")
    assert decode_varint(overlong, 0, len(overlong))[0] == -1  # a fifth byte: not MQTT (paho then says so)


def test_a_deliberate_close_sends_our_fin_and_reads_until_the_peers() -> None:
    sock, peer = pair()
    peer.sendall(b"late data the broker sent")  # unread at close: a plain close would answer with a reset
    peer.settimeout(5)
    closer = threading.Thread(target=sock.drain_close, args=(5.0,))
    closer.start()
    assert peer.recv(10) == b""  # our FIN, after everything we wrote
    peer.close()  # the broker's side, as after our DISCONNECT
    closer.join(5)
    assert not closer.is_alive()
    sock.close()


def _acking_client(protocol: MQTTProtocolVersion, *, manual_ack: bool = True) -> tuple[BufferedClient, socket.socket]:
    """An unconnected client whose network-thread wake-ups land on a real socket pair (returned: the
    end to count them on)."""
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="acks", protocol=protocol, manual_ack=manual_ack)
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    client._sockpairR, client._sockpairW = wake_r, wake_w
    client._thread = threading.current_thread()  # as under loop_start: queueing only queues and wakes
    return client, wake_r


def _wake_ups(wake_r: socket.socket) -> int:
    try:
        return len(wake_r.recv(1 << 16))
    except BlockingIOError:
        return 0


MIDS = [1, 2, 255, 256, 4097, 65535, 7]  # every byte position of a packet id, not sorted


@pytest.mark.parametrize("protocol", [MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311],
                         ids=["mqtt5", "mqtt311"])
def test_ack_many_queues_the_bytes_of_pahos_acks_as_one_packet_and_one_wake_up(
        protocol: MQTTProtocolVersion) -> None:
    pahos, pahos_wake = _acking_client(protocol)
    ours, our_wake = _acking_client(protocol)
    for mid in MIDS:
        assert pahos.ack(mid, 1) == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert ours.ack_many(MIDS) == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert len(pahos._out_packet) == len(MIDS) and _wake_ups(pahos_wake) == len(MIDS)
    assert len(ours._out_packet) == 1 and _wake_ups(our_wake) == 1
    assert ours._out_packet[0]["packet"] == b"".join(p["packet"] for p in pahos._out_packet)
    assert ours._out_packet[0]["command"] == pahos._out_packet[0]["command"]


def test_ack_many_sends_nothing_for_no_ids_or_without_manual_acks_and_refuses_a_bad_id() -> None:
    client, wake = _acking_client(MQTTProtocolVersion.MQTTv5)
    assert client.ack_many([]) == MQTTErrorCode.MQTT_ERR_SUCCESS
    auto, auto_wake = _acking_client(MQTTProtocolVersion.MQTTv5, manual_ack=False)
    assert auto.ack_many(MIDS) == MQTTErrorCode.MQTT_ERR_SUCCESS  # paho acked these on receipt
    assert not client._out_packet and not auto._out_packet and _wake_ups(wake) == _wake_ups(auto_wake) == 0
    for bad in ([-1], [65536], [5, 70000]):
        with pytest.raises(ValueError, match="packet id"):
            client.ack_many(bad)
    assert not client._out_packet


class Trickle:
    """A socket that takes at most 3 bytes a send and is "full" every other call (paho's partial writes)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._full = False

    def send(self, data: bytes | bytearray) -> int:
        self._full = not self._full
        if self._full:
            raise BlockingIOError
        return self._sock.send(data[:3])

    def close(self) -> None:
        self._sock.close()

    # The rest of paho's SocketLike, passed through.
    def recv(self, n: int) -> bytes:
        return self._sock.recv(n)

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)


def test_pahos_writer_sends_a_run_of_pubacks_whole_through_partial_writes() -> None:
    client, _ = _acking_client(MQTTProtocolVersion.MQTTv5)
    ours, peer = socket.socketpair()
    client._sock = Trickle(ours)
    client.ack_many(MIDS[:4])
    client.ack_many(MIDS[4:])
    for _ in range(100):
        if not client._out_packet:
            break
        client.loop_write()
    assert not client._out_packet
    expected = b"".join(bytes((0x40, 2)) + mid.to_bytes(2, "big") for mid in MIDS)
    peer.settimeout(5)
    got = b""
    while len(got) < len(expected):
        got += peer.recv(1024)
    assert got == expected
