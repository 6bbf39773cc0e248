"""How many payload bytes the alert worker's next batch may hold (pure).

A batch's bytes bound the work in it, so a breach never waits behind a large batch
(`AlertSettings.batch_max_bytes`). Once the worker is behind, though, a breach already waits behind
the whole queue, and part of the engine's cost is per batch (`bench.alerts.engine --batch-bytes`;
docs/decisions/alert-batches.md), so larger batches clear the queue sooner.
"""

from __future__ import annotations

from safewatch.settings import AlertSettings


def batch_max_bytes(oldest_received_at: float | None, now: float, cfg: AlertSettings) -> int:
    """The bound for the next batch: the larger one while the oldest message in hand (received at
    ``oldest_received_at``, ``time.time()``; None: none waits) has waited longer than ``cfg.behind_ms``."""
    if oldest_received_at is not None and (now - oldest_received_at) * 1000 > cfg.behind_ms:
        return max(cfg.batch_max_bytes, cfg.batch_max_bytes_behind)
    return cfg.batch_max_bytes
