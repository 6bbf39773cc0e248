"""Broker facts that decide "nothing lost", proved on private Mosquitto instances.

1. Mosquitto's default max_queued_messages (1000) drops QoS 1 messages to a subscriber that falls
   behind; with the shipped deploy/mosquitto/mosquitto.conf nothing is dropped.
2. Mosquitto 2.0 restores a persistent session's plain subscriptions after a restart, but not its
   shared ($share) ones: messages published before the subscriber re-subscribes are dropped.
"""

from __future__ import annotations

import os

import pytest

from bench.ingest.instances import MOSQUITTO, PrivateBroker
from safewatch.mqtt import Subscriber, connect_publisher
from safewatch.settings import MqttSettings
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="needs the mosquitto binary for a private broker"),
]

PUBLISHED = 3000


def _publish(url: str, topic: str, payloads: list[bytes], client_id: str) -> None:
    client = connect_publisher(MqttSettings(url=url), client_id=client_id)
    for info in [client.publish(topic, p, qos=1) for p in payloads]:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


def _received_by_lagging_subscriber(broker: PrivateBroker) -> list[bytes]:
    """A subscriber that takes 100 messages and stops acking while 3,000 are published, then catches up."""
    settings = MqttSettings(url=broker.url, session_expiry_s=600)
    with Subscriber(settings, client_id="lagging", topic_filters=["lag/#"], max_inflight=100) as sub:
        assert sub.wait_subscribed(10)
        _publish(broker.url, "lag/t", [b"%d" % i for i in range(PUBLISHED)], "lag-pub")
        got: list[bytes] = []

        def drain() -> int:
            batch = sub.get_batch(100, 0.002)
            sub.ack(batch)
            got.extend(d.payload for d in batch)
            return len(got)

        # Past the first window: the broker has moved messages off its queue to send them, so the queue
        # has room for the marker even where it dropped the overflow (else the marker is dropped too).
        wait_until(drain, lambda n: n >= 200, what="the messages after the first window")
        # Everything still queued at the broker is delivered in order before a marker sent now.
        _publish(broker.url, "lag/t", [b"marker"], "lag-marker")
        wait_until(drain, lambda _n: got[-1:] == [b"marker"], timeout=60, what="the marker")
        return got[:-1]


def test_default_queue_limit_drops_messages_and_the_shipped_config_does_not():
    with PrivateBroker(shipped=False) as default:
        dropped = PUBLISHED - len(_received_by_lagging_subscriber(default))
    assert dropped > 0, "Mosquitto's default max_queued_messages no longer drops: see docs/decisions/broker-restarts.md"
    with PrivateBroker(shipped=True) as shipped:
        received = _received_by_lagging_subscriber(shipped)
    assert received == [b"%d" % i for i in range(PUBLISHED)]


@pytest.mark.parametrize(("topic_filter", "restored"), [("plain/#", True), ("$share/g/plain/#", False)])
def test_which_subscriptions_survive_a_broker_restart(topic_filter, restored):
    with PrivateBroker(shipped=True) as broker:
        settings = MqttSettings(url=broker.url, session_expiry_s=600)
        with Subscriber(settings, client_id="restart-sub", topic_filters=[topic_filter], max_inflight=10) as sub:
            assert sub.wait_subscribed(10)
        broker.restart()
        # Reconnect without subscribing again: only the broker's restored session can deliver.
        with Subscriber(settings, client_id="restart-sub", topic_filters=[], max_inflight=10) as sub, \
                Subscriber(settings, client_id="probe", topic_filters=["plain/#"], max_inflight=10) as probe:
            assert sub.connected.wait(10) and probe.wait_subscribed(10)
            _publish(broker.url, "plain/t", [b"after-restart"], "restart-pub")
            # The broker fans a message out to every subscriber before the next: once the probe has
            # it, the restored session would have it too.
            assert [d.payload for d in probe.get_batch(1, 10.0)] == [b"after-restart"]
            got = sub.get_batch(1, 2.0 if restored else 0.5)
        assert [d.payload for d in got] == ([b"after-restart"] if restored else [])
