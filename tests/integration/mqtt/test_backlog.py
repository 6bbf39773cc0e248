"""A worker's subscriber draining a backlog at the real broker: reading in bulk never holds its acks back."""

from __future__ import annotations

from bench.ingest.publisher import RawPublisher
from safewatch.mqtt import Subscriber
from safewatch.settings import Settings

MESSAGES = 20_000
WINDOW = 500


def test_a_backlog_is_drained_with_its_acks_sent_as_it_goes(settings: Settings, uid: str) -> None:
    """20,000 messages wait at the broker for a persistent session; the subscriber takes them in
    batches and acks each batch. paho queues a PUBACK per ack and sends it when its loop next writes:
    a read loop that kept draining the socket would let that queue grow with the backlog."""
    topic = f"se/v1/150100/backlog-{uid}/telemetry"
    client_id = f"backlog-{uid}"

    def subscriber() -> Subscriber:
        return Subscriber(settings.mqtt, client_id=client_id, topic_filters=[topic], max_inflight=WINDOW)

    with subscriber() as sub:  # the session, and its subscription, outlive this connection
        assert sub.wait_subscribed(20)
    pub = RawPublisher(settings.mqtt.host, settings.mqtt.port, f"backlog-pub-{uid}")
    payload = b'{"readings":[]}' + b" " * 150
    for _ in range(MESSAGES // 1000):
        pub.publish_many([(topic.encode(), payload)] * 1000)
    assert pub.wait_acked(60), "the broker did not take the backlog"
    pub.close()

    received, most_queued = 0, 0
    with subscriber() as sub:
        while received < MESSAGES:
            batch = sub.get_batch(200, 5.0)
            assert batch, f"the backlog stopped after {received} messages"
            sub.ack(batch)
            received += len(batch)
            # PUBACKs not yet written: 4 bytes each, a batch of them to an out-packet (`ack_many`)
            most_queued = max(most_queued, sum(p["to_process"] for p in sub._client._out_packet) // 4)
    assert received == MESSAGES
    assert most_queued <= 2 * WINDOW, f"{most_queued} PUBACKs were held back at once"
