"""Schemathesis against the OpenAPI document, in process on the real database: no request makes a 5xx.

An administrator calls every operation (the widest rights, so writes get past the role checks);
examples are few per operation to keep the run bounded. Server-sent event streams never end and are
left out. (schemathesis' pytest plugin does not load under pytest 9 yet, so operations are driven here
with hypothesis directly: one bounded search per operation, the first failure of each collected.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation
from schemathesis.checks import not_a_server_error
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok

from tests.integration.api.conftest import Caller

STREAMS = r"^/api/v1/(dashboard/events|stream/.*)$"
# Logging out ends the shared caller's tokens for every later test; test_access_follows_the_registry covers it.
LOGOUT = "/api/v1/auth/logout"
EXAMPLES_PER_OPERATION = 12
# Server errors found in other engineers' operations and reported to them; they are left out of the search
# (remove a line once fixed).
KNOWN_SERVER_ERRORS: dict[str, str] = {}


def search(operation: Any, headers: dict[str, str], failures: dict[str, str], statuses: Counter[int]) -> None:
    """Run one operation's bounded search; record its first failure (an app exception is the in-process 500)."""
    name = f"{operation.method.upper()} {operation.path}"

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        try:
            response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
        except Exception as exc:
            failures.setdefault(name, f"{type(exc).__name__}: {str(exc)[:400]}")
            raise
        statuses[response.status_code] += 1

    try:
        run()
    except Exception:
        return  # recorded in `failures`; go on with the next operation


def operation_or_raise(result: Ok[APIOperation] | Err[InvalidSchema]) -> APIOperation:
    """The operation, or the schema's error about it (an operation the document cannot describe)."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


def test_no_operation_answers_with_a_server_error(app: Any, as_user: Callable[[str, str], Caller]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path_regex=STREAMS).exclude(path=LOGOUT)
    # A league administrator: full rights in Hohhot, and clear of the 100,000 rows the import tests put in Alxa.
    headers = as_user("administrator", "150100").headers
    failures: dict[str, str] = {}
    statuses: Counter[int] = Counter()
    operations = [operation_or_raise(result) for result in schema.get_all_operations()]
    for operation in operations:
        if f"{operation.method.upper()} {operation.path}" not in KNOWN_SERVER_ERRORS:  # shrinking them takes ~45 s
            search(operation, headers, failures, statuses)
    assert len(operations) > 50
    assert sum(statuses.values()) > len(operations) * 5, statuses  # the search really ran
    assert any(200 <= s < 300 for s in statuses), statuses  # and got past validation, not only 4xx
    assert not failures, "\n\n".join(f"{op}: {why}" for op, why in failures.items())
