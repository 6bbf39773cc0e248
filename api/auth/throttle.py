"""Login throttling against password guessing (pure: the caller passes the time).

After ``max_failures`` failed log-ins for one username, or from one client address, within ``window_s``,
further attempts are refused until the oldest failure leaves the window. A success clears the
username's failures. Per API process: several processes each allow their own share, which still turns
guessing at network speed into a handful of tries a minute.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MAX_KEYS = 100_000  # a bound on memory whatever names and addresses are thrown at it


@dataclass
class LoginThrottle:
    max_failures: int = 5
    window_s: float = 300.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, keys: tuple[str, ...], now: float) -> float:
        """Seconds until any of ``keys`` (username, address) may try again; 0 when it may now."""
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window_s - now)
        return wait

    def failed(self, keys: tuple[str, ...], now: float) -> None:
        if len(self._failures) > MAX_KEYS:
            self._failures.clear()
        for key in keys:
            self._recent(key, now).append(now)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times
