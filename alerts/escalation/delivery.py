"""When to try a failed delivery again: exponential back-off, capped, with a jitter fixed per message."""

from __future__ import annotations


def retry_delay(attempt: int, *, base_s: float, max_s: float, salt: int = 0) -> float:
    """Seconds before attempt ``attempt + 1`` after ``attempt`` failures (attempt ≥ 1).

    The jitter (0-20 %) is derived from ``salt`` (the outbox id) so retries of many messages to one
    receiver that came back spread out, and the same message always gets the same delay.
    """
    if attempt < 1:
        raise ValueError("attempt counts failures so far and starts at 1")
    delay: float = min(max_s, base_s * 2.0 ** min(attempt - 1, 30))
    jitter = ((salt * 2654435761) % 1000) / 1000 * 0.2
    return min(max_s, delay * (1 + jitter))
