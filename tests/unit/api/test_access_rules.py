"""The pure rules of access: which tokens are current, and when log-ins are throttled."""

from __future__ import annotations

import jwt

from api.auth.revocation import Identity, is_current
from api.auth.throttle import LoginThrottle
from api.auth.tokens import Principal, issue_token, read_token

SECRET = "a-unit-test-secret-of-at-least-32-bytes"


def test_a_token_is_current_only_while_the_person_is_unchanged() -> None:
    holder = Principal(7, "li", "league_inspector", "150100", token_version=3)
    assert is_current(holder, Identity(3, "league_inspector", "150100"))
    assert not is_current(holder, None)  # retired or never stored
    assert not is_current(holder, Identity(4, "league_inspector", "150100"))  # password changed, logged out
    assert not is_current(holder, Identity(3, "banner_inspector", "150100"))
    assert not is_current(holder, Identity(3, "league_inspector", "150200"))


def test_the_token_carries_the_version_and_old_tokens_read_as_none() -> None:
    holder = Principal(7, "li", "league_inspector", "150100", token_version=3)
    assert read_token(issue_token(holder, secret=SECRET, ttl_s=60), secret=SECRET) == holder

    old = jwt.encode({"sub": "7", "name": "li", "role": "league_inspector", "div": "150100", "exp": 2**40},
                     SECRET, algorithm="HS256")
    assert not is_current(read_token(old, secret=SECRET), Identity(0, "league_inspector", "150100"))


def test_five_failures_block_the_name_and_the_address_until_the_window_passes() -> None:
    throttle = LoginThrottle(max_failures=5, window_s=300)
    keys = ("user:li", "addr:10.0.0.1")
    for t in range(5):
        assert throttle.retry_after(keys, float(t)) == 0
        throttle.failed(keys, float(t))
    assert throttle.retry_after(keys, 10.0) == 290.0
    assert throttle.retry_after(("user:other", "addr:10.0.0.1"), 10.0) == 290.0  # same address
    assert throttle.retry_after(("user:li", "addr:10.0.0.2"), 10.0) == 290.0  # same name
    assert throttle.retry_after(("user:other", "addr:10.0.0.2"), 10.0) == 0
    assert throttle.retry_after(keys, 300.5) == 0  # the first failure left the window


def test_a_success_clears_the_names_failures() -> None:
    throttle = LoginThrottle(max_failures=2, window_s=60)
    throttle.failed(("user:li", "addr:a"), 0.0)
    throttle.succeeded("user:li")
    throttle.failed(("user:li", "addr:b"), 1.0)
    assert throttle.retry_after(("user:li", "addr:c"), 2.0) == 0
