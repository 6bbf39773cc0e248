"""What the outbox stores of a receiver's answer: any text, made storable (issue 21)."""

from __future__ import annotations

from alerts.outbox import storable


def test_nul_and_lone_surrogates_are_escaped_and_the_rest_kept() -> None:
    assert storable("HTTP 500: bad\x00gate \ud800 锅炉") == "HTTP 500: bad\\x00gate \\ud800 锅炉"
    assert storable("plain text\n") == "plain text\n"
