"""Waiting for a condition in tests: check it, and re-check promptly until a deadline.

Not a sleep used as synchronisation: the test proceeds the moment the condition holds, and fails
with the last observed value when it never does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(observe: Callable[[], T], done: Callable[[T], bool], *, timeout: float = 30.0,
               what: str = "condition") -> T:
    """Return the first observation for which ``done`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while True:
        value = observe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s; last observed {value!r}")
        tick.wait(0.05)
