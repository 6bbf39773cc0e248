"""Ports for the servers the demo, the tests and the benches start: free, and out of the way of
outgoing connections (safewatch.demo.free_port)."""

from __future__ import annotations

import socket

from safewatch.demo import _ephemeral_low, free_port


def test_ports_are_free_and_below_the_range_outgoing_connections_use() -> None:
    low = _ephemeral_low()
    for _ in range(50):
        port = free_port()
        if low > 21_000:
            assert 20_000 <= port < low
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free: a server can take it


def test_a_port_in_use_is_not_handed_out() -> None:
    held = []
    try:
        for _ in range(30):  # hold ports as servers would; none is given twice while held
            s = socket.socket()
            s.bind(("127.0.0.1", free_port()))
            s.listen()
            held.append(s)
        assert len({s.getsockname()[1] for s in held}) == len(held)
    finally:
        for s in held:
            s.close()
