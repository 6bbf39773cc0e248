"""The workers' subscriber decoding PUBLISH runs itself (safewatch.mqtt_socket), against the real broker.

Every message must arrive whole, in order, with its topic, QoS and packet id right: a wrong packet id
would acknowledge another message, so each case ends by reconnecting the session and checking that
the broker has nothing left to redeliver.
"""

from __future__ import annotations

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from safewatch.mqtt import Subscriber, connect_publisher
from safewatch.mqtt_socket import READ_SIZE, BufferedClient
from safewatch.settings import Settings
from tests.integration.mqtt.deliveries import take


def _publisher(settings: Settings, client_id: str, protocol5: bool) -> paho.Client:
    """A publisher whose every QoS 1 message goes out at once, so none waits behind a later QoS 0 one."""
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                      protocol=MQTTProtocolVersion.MQTTv5 if protocol5 else MQTTProtocolVersion.MQTTv311)
    pub.max_inflight_messages_set(2000)
    pub.connect(settings.mqtt.host, settings.mqtt.port)
    pub.loop_start()
    return pub


@pytest.mark.parametrize("protocol5", [True, False], ids=["mqtt5", "mqtt311"])
def test_every_kind_of_publish_arrives_whole_in_order_and_is_acked(settings: Settings, uid: str,
                                                                    protocol5: bool) -> None:
    plain = f"se/v1/150100/bulk-{uid}/telemetry"
    utf8 = f"se/v1/150100/网关-{uid}/telemetry"  # a topic of multi-byte characters
    client_id = f"bulk-{uid}"

    def subscriber() -> Subscriber:
        return Subscriber(settings.mqtt, client_id=client_id, topic_filters=[plain, utf8], max_inflight=2000,
                          protocol5=protocol5)

    with subscriber() as sub:  # connected while publishing: QoS 0 is not queued for an offline session
        assert isinstance(sub._client, BufferedClient) and sub._client.publish_sink is not None
        assert sub.wait_subscribed(20)
        pub = _publisher(settings, f"bulk-pub-{uid}", protocol5)
        sent: list[tuple[str, bytes, int]] = []
        infos = []
        try:
            props = None
            if protocol5:  # user properties travel on to the subscriber: a properties section to skip
                props = Properties(PacketTypes.PUBLISH)
                props.UserProperty = ("gateway-firmware", "2.4.1")
            for i in range(1500):
                topic = utf8 if i % 7 == 0 else plain
                if i == 700:
                    payload = b"x" * (READ_SIZE + 10_000)  # longer than one socket read: split over two
                elif i == 701:
                    payload = b""
                else:
                    payload = b'{"n":%d}' % i + b" " * (i % 300)
                qos = 0 if i % 5 == 0 else 1
                sent.append((topic, payload, qos))
                infos.append(pub.publish(topic, payload, qos=qos, properties=props if i % 2 else None))
            for info in infos:
                info.wait_for_publish(20)
        finally:
            pub.disconnect()
            pub.loop_stop()
        got = take(sub, len(sent))
        sub.ack(got)
        assert sub._client.decoded_in_bulk > 0  # the bulk path ran (the long message took paho's)
    assert [(d.topic, d.payload, d.qos) for d in got] == sent
    assert all(d.mid > 0 for d in got if d.qos == 1)

    # Every QoS 1 message was acknowledged by its own packet id: nothing is left to redeliver, and a
    # message published now arrives alone.
    marker = (plain, b'{"marker":true}', 1)
    with subscriber() as sub:
        assert sub.wait_subscribed(20)
        pub = connect_publisher(settings.mqtt, client_id=f"bulk-pub2-{uid}", protocol5=protocol5)
        try:
            pub.publish(marker[0], marker[1], qos=1).wait_for_publish(20)
        finally:
            pub.disconnect()
            pub.loop_stop()
        after = take(sub, 1)
        sub.ack(after)
    assert [(d.topic, d.payload, d.qos) for d in after] == [marker]
