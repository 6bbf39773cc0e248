"""The read-buffering socket under paho (safewatch.mqtt_socket) over a real socket pair."""

from __future__ import annotations

import socket

import pytest

from safewatch.mqtt_socket import READ_SIZE, BufferedSocket


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
