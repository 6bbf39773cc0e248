"""Back-off delays for reconnect loops (the loops themselves stay in each worker, interruptible)."""

from __future__ import annotations

from collections.abc import Iterator


def backoff(initial_s: float = 0.5, factor: float = 2.0, max_s: float = 30.0) -> Iterator[float]:
    """0.5, 1, 2, 4 … capped at ``max_s``, forever."""
    delay = initial_s
    while True:
        yield delay
        delay = min(delay * factor, max_s)
