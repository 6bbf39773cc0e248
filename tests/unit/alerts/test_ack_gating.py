"""What the worker acknowledges, and what it recognises when the broker sends it again (pure parts)."""

from __future__ import annotations

from alerts.worker import Engine, _Progress, fingerprint
from safewatch.mqtt import Delivery


def _d(i: int, topic: str = "se/v1/150100/gw-a/telemetry") -> Delivery:
    return Delivery(topic, b'{"n":%d}' % i, i, 1, 2, 0.0)


def test_deliveries_the_checkpoint_covered_are_recognised_once_and_in_order() -> None:
    covered = [_d(i) for i in range(5)]
    progress = _Progress([fingerprint(d) for d in covered])
    progress.resent_budget = 100
    # The broker sends again those whose acks it never got (3 and 4), then what the checkpoint did not cover.
    fresh, skipped = progress.skip_covered([covered[3], covered[4], _d(5), _d(6)])
    assert skipped == [covered[3], covered[4]] and fresh == [_d(5), _d(6)]
    # A later identical payload is new: every covered one before it has been seen.
    fresh, skipped = progress.skip_covered([covered[0]])
    assert fresh == [covered[0]] and skipped == []


def test_same_payload_on_another_topic_or_packet_id_is_another_delivery() -> None:
    """Two last wills of one gateway are the same bytes; the broker's packet id tells a resend from a new one."""
    a, b = _d(1), _d(1, "se/v1/150100/gw-b/telemetry")
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a) != fingerprint(a._replace(mid=a.mid + 1))
    progress = _Progress([fingerprint(a)])
    progress.resent_budget = 10
    assert progress.skip_covered([b]) == ([b], [])


def test_a_checkpoint_is_due_by_time_or_by_half_the_window() -> None:
    engine = Engine(anomaly_enabled=False)
    progress = _Progress(())
    assert not progress.due(engine, checkpoint_s=0.0, max_messages=4, max_bytes=1 << 20)  # nothing to cover
    progress.add([_d(1)])
    assert not progress.due(engine, checkpoint_s=60.0, max_messages=4, max_bytes=1 << 20)
    progress.add([_d(2)])
    assert progress.due(engine, checkpoint_s=60.0, max_messages=4, max_bytes=1 << 20)  # half of 4 unacked
    assert progress.due(engine, checkpoint_s=60.0, max_messages=100, max_bytes=20)  # half of the bytes
