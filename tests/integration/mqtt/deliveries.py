"""What the MQTT integration tests share: taking a known number of deliveries from a subscriber."""

from __future__ import annotations

from safewatch.mqtt import Delivery, Subscriber


def take(sub: Subscriber, expected: int, wait_s: float = 10.0) -> list[Delivery]:
    """``expected`` deliveries, not acknowledged; fails if they do not come."""
    got: list[Delivery] = []
    while len(got) < expected:
        batch = sub.get_batch(expected - len(got), wait_s)  # returns as soon as all that is due is in
        assert batch, f"only {len(got)} of {expected} messages arrived"
        got += batch
    return got
