"""The alert worker's batches stay small while it keeps up, and grow once it is behind."""

from __future__ import annotations

from alerts.batch_bound import batch_max_bytes
from safewatch.mqtt import Delivery, InflightWindow
from safewatch.settings import AlertSettings

CFG = AlertSettings(worker_id="t", batch_max_bytes=128 * 1024, batch_max_bytes_behind=1024 * 1024, behind_ms=1000)


def test_keeping_up_the_batch_is_bounded_small():
    assert batch_max_bytes(None, 100.0, CFG) == 128 * 1024  # nothing waits
    assert batch_max_bytes(99.5, 100.0, CFG) == 128 * 1024  # waited half a second
    assert batch_max_bytes(99.0, 100.0, CFG) == 128 * 1024  # exactly the limit: not yet behind


def test_behind_the_batch_may_grow():
    assert batch_max_bytes(98.999, 100.0, CFG) == 1024 * 1024
    assert batch_max_bytes(40.0, 100.0, CFG) == 1024 * 1024


def test_a_larger_bound_behind_never_makes_batches_smaller():
    cfg = CFG.model_copy(update={"batch_max_bytes_behind": 1024})
    assert batch_max_bytes(0.0, 100.0, cfg) == 128 * 1024


def test_the_window_tells_when_its_oldest_delivery_was_received():
    window = InflightWindow(10, 1 << 20)
    assert window.oldest_received_at() is None
    window.put_many([Delivery("t", b"x", 1, 1, 0, 5.0), Delivery("t", b"y", 2, 1, 0, 7.0)])
    assert window.oldest_received_at() == 5.0
    assert [d.mid for d in window.take(1, 0.0)] == [1]
    assert window.oldest_received_at() == 7.0  # the taken one is no longer waiting
    window.take(1, 0.0)
    assert window.oldest_received_at() is None
