"""The API's contract under schemathesis with every check it has, as each role and as nobody (issue 22, point 6).

Each caller runs schemathesis' engine in process against the real app on a database of its own (seeded with
a small registry, alerts and dead letters), derandomized and bounded (the phases and examples below; every
phase for every caller in the bench), and must see no failing check at all: no 5xx, every status and body as
the OpenAPI document states, schema-invalid requests refused, schema-valid ones taken (or refused with 422
for a domain rule: tests/api_contract.py), 405 with a true ``Allow`` for undeclared methods, credentials
enforced. Two banner inspectors, peers, run
``object_level_authorization``: neither may read what lies in the other's banner. The long run is
``python -m bench.api_contract``.

Runs here take the module's database, not the package's: writes as an administrator retire people and
equipment that other tests' callers stand on, and failed log-ins fill the throttle of a shared app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.auth.users import token_for, upsert_user
from safewatch.db import one_row
from tests.api_contract import CALLERS, PEERS, Outcome, all_checks, build_app, peers_auth_file, run_contract, seed_rows
from tests.services import Caller, create_database, drop_database, stored_callers

SECRET = "test-secret-for-the-api-contract-run"
INSERT_CONTACT = "INSERT INTO contacts (division_code, name, kind) VALUES ('150102', 'duty', 'inspector') RETURNING id"
SEED = 22
# The CI size (under 90 s on 2 shared cores): the administrator, whose rights reach every operation, runs the
# examples, fuzzing and stateful phases; the other callers examples and fuzzing with fewer examples. The
# coverage phase (boundary and negative values, undeclared methods, missing headers) is ~80 % of a full run's
# requests: it runs for every caller in the bench, `python -m bench.api_contract`.
EXAMPLES = 3
FEW_EXAMPLES = 1
ADMIN_PHASES = ("examples", "fuzzing", "stateful")
QUICK_PHASES = ("examples", "fuzzing")


@pytest.fixture(scope="module")
def contract_db() -> Iterator[str]:
    url = create_database(storage="plain")
    seed_rows(url, equipment=240, seed=SEED)
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def contract_app(contract_db: str) -> Iterator[Any]:
    app, pool = build_app(contract_db, secret=SECRET)
    yield app
    pool.close()


@pytest.fixture(scope="module")
def caller(contract_db: str) -> Callable[[str, str], Caller]:
    return stored_callers(contract_db, SECRET)


def _assert_clean(outcome: Outcome) -> None:
    assert outcome.server_errors == 0, outcome.report()
    assert not outcome.failures and not outcome.errors, outcome.report()
    assert outcome.requests > 0, outcome.report()


def test_nobody_is_refused_everywhere_but_the_login(contract_app: Any) -> None:
    outcome = run_contract(contract_app, caller="nobody", headers=None, seed=SEED, max_examples=FEW_EXAMPLES,
                           phases=QUICK_PHASES)
    _assert_clean(outcome)
    # Every operation but the login, /healthz and /metrics refused it at least once: the checks saw the refusals.
    assert outcome.statuses[401] >= len(outcome.operations) - 3, outcome.statuses


@pytest.mark.parametrize(("role", "division"), CALLERS, ids=[role for role, _ in CALLERS])
def test_every_check_passes_for(role: str, division: str, contract_app: Any,
                                caller: Callable[[str, str], Caller]) -> None:
    admin = role == "administrator"
    outcome = run_contract(contract_app, caller=f"{role}-{division}", headers=caller(role, division).headers,
                           seed=SEED, max_examples=EXAMPLES if admin else FEW_EXAMPLES,
                           phases=ADMIN_PHASES if admin else QUICK_PHASES)
    _assert_clean(outcome)
    assert any(200 <= s < 300 for s in outcome.statuses), outcome.statuses  # it got past validation
    assert {name for name, _ in outcome.checks} == set(all_checks())  # every check the installed version has


def test_peers_cannot_read_each_others_objects(contract_app: Any, caller: Callable[[str, str], Caller],
                                               tmp_path: Path) -> None:
    """Two banner inspectors of Hohhot: each reads only its own banner (object_level_authorization)."""
    tokens = {name: caller(*who).headers["Authorization"].removeprefix("Bearer ") for name, who in PEERS.items()}
    auth_file = peers_auth_file(tmp_path / "wfc-auth.json", tokens)
    outcome = run_contract(contract_app, caller="peers east/west", headers=None, seed=SEED, max_examples=2,
                           phases=QUICK_PHASES, wfc={"path": str(auth_file), "peers": list(PEERS)})
    _assert_clean(outcome)
    # The run calls as the first peer; the check replays the reads of its objects as the other.
    assert outcome.identities["east"] > 0 and outcome.identities["west"] > 0, outcome.identities


def test_logging_out_is_in_the_contract_too(contract_app: Any, contract_db: str) -> None:
    """Logout ends every token of its caller: it runs alone, as a person made for it."""
    with psycopg.connect(contract_db) as conn:
        user_id = upsert_user(conn, "logs-out", "a-long-test-password", "league_inspector", "150100")
        token = token_for(conn, user_id, secret=SECRET, ttl_s=3600)
    outcome = run_contract(contract_app, caller="logs-out", headers={"Authorization": f"Bearer {token}"},
                           seed=SEED, max_examples=EXAMPLES, only_logout=True)
    _assert_clean(outcome)
    assert outcome.statuses[204] >= 1 and outcome.statuses[401] >= 1, outcome.statuses


def test_every_operation_documents_its_errors_with_the_one_error_body(contract_app: Any) -> None:
    document = contract_app.openapi()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" in responses, (method, path)
            if operation.get("security"):
                assert "401" in responses, (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            for status, entry in responses.items():
                if status.startswith("4"):
                    schema = entry["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)


def test_plain_http_errors_come_in_the_one_error_body(contract_app: Any, caller: Callable[[str, str], Caller],
                                                      contract_db: str) -> None:
    with TestClient(contract_app) as client:
        r = client.get("/api/v1/me")
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert r.json() == {"detail": [{"msg": "log in first: POST /api/v1/auth/token", "loc": [],
                                        "type": "unauthorized"}]}
        # Two routes serve /api/v1/units (GET, POST): the 405 names both, not only the first one matched.
        r = client.delete("/api/v1/units")
        assert r.status_code == 405 and r.headers["Allow"] == "GET, POST", r.headers
        assert r.json()["detail"][0]["type"] == "method_not_allowed"
        # /equipment/export is its own resource, though PATCH /equipment/{code} matches its path too.
        assert client.options("/api/v1/equipment/export").headers["Allow"] == "GET"
        # A date given as a number is refused, not read as seconds since 1970 (schemathesis found it).
        r = client.get("/api/v1/equipment/summary", params={"today": "0"},
                       headers=caller("league_inspector", "150100").headers)
        assert r.status_code == 422 and "is a number" in r.json()["detail"][0]["msg"], r.text
        # So is a boolean given as 0 (the long run found it: on_duty 0 was read as false).
        with psycopg.connect(contract_db) as conn:
            contact_id = one_row(conn.execute(INSERT_CONTACT))[0]
        r = client.put(f"/api/v1/contacts/{contact_id}/duty", json={"on_duty": 0},
                       headers=caller("administrator", "150100").headers)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "on_duty"], r.text
