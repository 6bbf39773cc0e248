"""Batches committed in any order, released for acknowledgement in the order they were received (pure).

Several committers write batches at once, and any of them may finish first; MQTT wants a subscriber's
PUBACKs in the order the PUBLISHes came. A batch is due once it and every batch received before it
are committed. Not thread-safe: the caller holds a lock.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class AckOrder(Generic[T]):
    """Numbers batches as they are handed out; gives back, in that order, the committed ones now due."""

    def __init__(self) -> None:
        self._issued = 0
        self._next = 0  # the oldest batch not yet due
        self._committed: dict[int, T] = {}

    def issue(self) -> int:
        """The number of the next batch received."""
        self._issued += 1
        return self._issued - 1

    def committed(self, number: int, batch: T) -> list[T]:
        """Batch ``number`` is committed: every batch now due, oldest first (none while an older one is not)."""
        if not self._next <= number < self._issued or number in self._committed:
            raise ValueError(f"batch {number} was not issued, or was committed already")
        self._committed[number] = batch
        due = []
        while self._next in self._committed:
            due.append(self._committed.pop(self._next))
            self._next += 1
        return due

    def waiting(self) -> int:
        """Batches committed but held behind an older one."""
        return len(self._committed)
