"""Batches committed in any order are acknowledged in the order they were received, each once."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.ack_order import AckOrder


@given(st.integers(1, 12).flatmap(lambda n: st.permutations(range(n))))
def test_any_commit_order_acks_in_receive_order_and_never_past_a_gap(order: list[int]):
    acks = AckOrder[str]()
    numbers = [acks.issue() for _ in order]
    assert numbers == list(range(len(order)))
    released: list[str] = []
    committed: set[int] = set()
    for number in order:
        released += acks.committed(number, f"batch-{number}")
        committed.add(number)
        prefix = next(i for i in range(len(order) + 1) if i not in committed)  # the oldest uncommitted
        assert released == [f"batch-{i}" for i in range(prefix)]
        assert acks.waiting() == len(committed) - prefix
    assert released == [f"batch-{i}" for i in range(len(order))]


def test_a_later_batch_waits_for_an_older_one_still_being_written():
    acks = AckOrder[str]()
    first, second = acks.issue(), acks.issue()
    assert acks.committed(second, "b") == []
    assert acks.waiting() == 1
    assert acks.committed(first, "a") == ["a", "b"]


def test_a_batch_is_committed_once_and_only_when_issued():
    acks = AckOrder[str]()
    with pytest.raises(ValueError, match="not issued"):
        acks.committed(0, "never handed out")
    number = acks.issue()
    acks.committed(number, "a")
    with pytest.raises(ValueError, match="committed already"):
        acks.committed(number, "a again")
