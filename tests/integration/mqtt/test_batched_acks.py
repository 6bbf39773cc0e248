"""A batch's PUBACKs written as one out-packet (`BufferedClient.ack_many`) are real acknowledgements.

Each case holds a persistent session at the real broker, takes its queued QoS 1 messages with manual
acks, acknowledges some with one `Subscriber.ack` call and reconnects the session: the broker must
redeliver exactly the messages that were not acknowledged (told apart by payload), and then nothing.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as paho
import pytest

from safewatch.mqtt import Delivery, Subscriber, connect_publisher
from safewatch.mqtt_socket import BufferedClient, BufferedSocket
from safewatch.settings import Settings
from tests.integration.mqtt.deliveries import take

MESSAGES = 600


class Session:
    """One client id's persistent session on a topic of its own."""

    def __init__(self, settings: Settings, uid: str, name: str, protocol5: bool) -> None:
        self.settings, self.protocol5 = settings, protocol5
        self.topic = f"se/v1/150100/{name}-{uid}/telemetry"
        self.client_id = f"{name}-{uid}"
        self.uid = uid

    def subscriber(self) -> Subscriber:
        return Subscriber(self.settings.mqtt, client_id=self.client_id, topic_filters=[self.topic],
                          max_inflight=2 * MESSAGES, protocol5=self.protocol5)

    def publish(self, payloads: list[bytes], tag: str) -> None:
        pub = connect_publisher(self.settings.mqtt, client_id=f"{self.client_id}-pub-{tag}", protocol5=self.protocol5)
        try:
            for info in [pub.publish(self.topic, p, qos=1) for p in payloads]:
                info.wait_for_publish(20)
                assert info.is_published()
        finally:
            pub.disconnect()
            pub.loop_stop()


def _redelivered_then_marker(session: Session, tag: str) -> list[bytes]:
    """Reconnect the session, publish a marker, and return the payloads that arrive up to and with it
    (acknowledging them). The broker sends a session's queued messages before a new one: whatever
    it still held comes before the marker."""
    marker = b"marker-" + tag.encode()
    with session.subscriber() as sub:
        assert sub.wait_subscribed(20)
        session.publish([marker], tag)
        got: list[Delivery] = []
        while not got or got[-1].payload != marker:
            batch = sub.get_batch(max(1, sub.queued()), 10.0)  # what is in, or wait for the next
            assert batch, f"the marker did not arrive ({len(got)} messages before it)"
            got += batch
            sub.ack(batch)
    return [d.payload for d in got]


@contextmanager
def _puback_packets(client: paho.Client) -> Iterator[list[bytes]]:
    """The PUBACK out-packets ``client`` queues meanwhile (each one wake-up of its network thread)."""
    assert isinstance(client, BufferedClient)
    queued: list[bytes] = []
    real = client._packet_queue

    def spy(command: int, packet: bytes, *args: Any, **kwargs: Any) -> Any:
        if command & 0xF0 == paho.PUBACK:
            queued.append(bytes(packet))
        return real(command, packet, *args, **kwargs)

    client._packet_queue = spy  # type: ignore[method-assign]  # a spy on paho's queue, this client only
    try:
        yield queued
    finally:
        del client._packet_queue  # back to the class's method


def _pubacks(deliveries: list[Delivery]) -> bytes:
    return b"".join(bytes((paho.PUBACK, 2)) + d.mid.to_bytes(2, "big") for d in deliveries)


@pytest.fixture(params=[True, False], ids=["mqtt5", "mqtt311"])
def protocol5(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def _queued_session(settings: Settings, uid: str, name: str, protocol5: bool) -> tuple[Session, list[bytes]]:
    """A session with MESSAGES distinct messages waiting for it at the broker."""
    session = Session(settings, uid, name, protocol5)
    with session.subscriber() as sub:  # the session, and its subscription, outlive this connection
        assert sub.wait_subscribed(20)
    payloads = [b'{"n":%d}' % i for i in range(MESSAGES)]
    session.publish(payloads, "load")
    return session, payloads


def test_one_ack_call_for_the_whole_batch_leaves_nothing_to_redeliver(settings: Settings, uid: str,
                                                                      protocol5: bool) -> None:
    session, payloads = _queued_session(settings, uid, "ackall", protocol5)
    with session.subscriber() as sub:
        got = take(sub, MESSAGES)
        assert [d.payload for d in got] == payloads
        with _puback_packets(sub._client) as queued:
            assert sub.ack(got) == MESSAGES
        assert queued == [_pubacks(got)]  # one out-packet, the PUBACKs in delivery order
    assert _redelivered_then_marker(session, "after") == [b"marker-after"]


def test_acking_the_first_half_in_one_call_redelivers_exactly_the_second_half(settings: Settings, uid: str,
                                                                             protocol5: bool) -> None:
    session, payloads = _queued_session(settings, uid, "ackhalf", protocol5)
    half = MESSAGES // 2
    with session.subscriber() as sub:
        got = take(sub, MESSAGES)
        assert [d.payload for d in got] == payloads
        with _puback_packets(sub._client) as queued:
            assert sub.ack(got[:half]) == half
        assert queued == [_pubacks(got[:half])]
    assert _redelivered_then_marker(session, "after") == [*payloads[half:], b"marker-after"]


def test_acks_of_a_lost_connection_are_not_sent_and_the_redelivered_copies_are(settings: Settings,
                                                                                uid: str) -> None:
    """The generation rule with batched acks: after a reconnect, a batch taken before it is released
    without a PUBACK (its packet ids belong to the old connection), and the broker's redelivered copies,
    acked in one call, are what clears the session."""
    session, payloads = _queued_session(settings, uid, "ackgen", True)
    with session.subscriber() as sub:
        before = take(sub, MESSAGES)
        sock = sub._client._sock
        assert isinstance(sock, BufferedSocket | socket.socket)
        sock.shutdown(socket.SHUT_RDWR)  # the connection is lost; paho reconnects the session
        again = take(sub, MESSAGES)  # the broker redelivers everything unacknowledged
        assert [d.payload for d in again] == payloads
        assert len({d.generation for d in again}) == 1 and again[0].generation > before[0].generation
        with _puback_packets(sub._client) as queued:
            assert sub.ack(before) == 0
            assert queued == []
            assert sub.ack(again) == MESSAGES
        assert queued == [_pubacks(again)]
        assert sub.unacked() == (0, 0)  # both batches' budgets were released
    assert _redelivered_then_marker(session, "after") == [b"marker-after"]
