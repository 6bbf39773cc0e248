"""Text PostgreSQL cannot store (NUL, lone surrogates, C0 controls) gets 422 naming the field, never a 500.

Two sweeps, both against the real database: the requests issue 21 found answering 500 (valid in every
other way, so the text reaches the SQL on code without the rule), and every string input of every operation
the OpenAPI document lists (so a route added later is covered without editing this file). After each
refused request the API serves the next one.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import schemathesis
from fastapi import Request
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from api.app import create_app
from safewatch.db import one_row
from safewatch.settings import ApiSettings, DbSettings, Settings
from tests.api_contract import LOGOUT, STREAMS, operation_or_raise
from tests.integration.api.conftest import SECRET, Caller, Registered

NUL, SURROGATE = "\x00", "\ud800"
INSERT_ALERT = """
INSERT INTO alerts (equipment_id, rule_key, severity, state, active, division_code, league_code, message, opened_at,
                    updated_at)
SELECT id, 'event.passenger_trapped', 'critical', 'active_unack', true, banner_code, '150100', 'unstorable probe',
       now(), now()
FROM equipment WHERE code = %s RETURNING id
"""


@dataclass(frozen=True)
class Probe:
    """One request with a bad character in the field at ``loc``."""

    method: str
    path: str  # may hold {alert} and {code}
    loc: list[str | int]
    query: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    form: dict[str, str] | None = None


def with_text(bad: str) -> list[Probe]:
    """The requests issue 21 found answering 500, and their neighbours, each with ``bad`` in one field."""
    def q(path: str, name: str) -> Probe:
        return Probe("GET", path, ["query", name], query={name: f"a{bad}b"})

    def b(method: str, path: str, name: str, body: dict[str, Any]) -> Probe:
        return Probe(method, path, ["body", name], body={**body, name: f"a{bad}b"})

    contact = {"division_code": "150102", "name": "probe", "kind": "inspector", "on_duty": True,
               "channels": [{"channel": "webhook", "address": "http://127.0.0.1:9/hook"}]}
    return [
        q("/api/v1/alerts", "rule"), q("/api/v1/alerts", "assignee"), q("/api/v1/alerts", "equipment"),
        q("/api/v1/deadletters", "gateway"), q("/api/v1/alerts/rules/overrides", "equipment"),
        q("/api/v1/responses/stats", "rule_key"), q("/api/v1/equipment/search", "q"),
        Probe("GET", f"/api/v1/equipment/311{quote(bad, errors='surrogatepass')}0", ["path", "code"]),
        b("POST", "/api/v1/alerts/{alert}/comments", "text", {}),
        b("POST", "/api/v1/alerts/{alert}/assign", "assignee", {}),
        b("POST", "/api/v1/alerts/{alert}/acknowledge", "reason", {}),
        b("POST", "/api/v1/alerts/{alert}/shelve", "reason", {"minutes": 5}),
        b("PUT", "/api/v1/alerts/rules/overrides/{code}/elevator.overspeed", "reason", {"limit_value": 2.0}),
        b("POST", "/api/v1/contacts", "name", contact),
        Probe("POST", "/api/v1/contacts", ["body", "channels", 0, "address"],
              body={**contact, "channels": [{"channel": "webhook", "address": f"http://127.0.0.1:9/{bad}"}]}),
        Probe("POST", "/api/v1/auth/token", ["body", "username"], form={"username": f"a{bad}", "password": "x"}),
    ]


@pytest.fixture(scope="module")
def alert_and_code(register: Callable[[str, str], Registered], api_db: str) -> tuple[int, str]:
    reg = register("150102", "150100")
    with psycopg.connect(api_db) as conn:
        return one_row(conn.execute(INSERT_ALERT, (reg.code,)))[0], reg.code


def send(client: TestClient, probe: Probe, headers: dict[str, str], alert: int, code: str) -> Any:
    path = probe.path.replace("{alert}", str(alert)).replace("{code}", code)
    if probe.body is not None:
        # Sent as ASCII JSON: "\ud800" is a valid JSON escape, though no UTF-8 encoder would take the character.
        return client.request(probe.method, path, params=probe.query, headers={**headers,
                              "Content-Type": "application/json"}, content=json.dumps(probe.body).encode())
    if probe.form is not None:
        return client.request(probe.method, path, params=probe.query, headers=headers, data=probe.form)
    return client.request(probe.method, path, params=probe.query, headers=headers)


def assert_refused(response: Any, loc: list[str | int], client: TestClient, headers: dict[str, str]) -> None:
    assert response.status_code == 422, (response.status_code, response.text)
    (detail,) = response.json()["detail"]
    assert detail["loc"] == loc, detail
    assert detail["type"] == "unprocessable" and "send it again" in detail["msg"], detail
    assert client.get("/api/v1/alerts", params={"limit": 1}, headers=headers).status_code == 200  # still serving


@pytest.mark.parametrize("probe", with_text(NUL), ids=lambda p: f"NUL {p.method} {p.path} {p.loc}")
def test_nul_in_each_field_found_by_the_issue_is_refused(client: TestClient, as_user: Callable[[str, str], Caller],
                                                        alert_and_code: tuple[int, str], probe: Probe) -> None:
    headers = as_user("administrator", "150100").headers
    assert_refused(send(client, probe, headers, *alert_and_code), probe.loc, client, headers)


@pytest.mark.parametrize("probe", [p for p in with_text(SURROGATE) if p.body is not None],
                         ids=lambda p: f"surrogate {p.method} {p.path} {p.loc}")
def test_lone_surrogate_in_json_bodies_is_refused(client: TestClient, as_user: Callable[[str, str], Caller],
                                                  alert_and_code: tuple[int, str], probe: Probe) -> None:
    headers = as_user("administrator", "150100").headers
    assert_refused(send(client, probe, headers, *alert_and_code), probe.loc, client, headers)


# -- every string input of every operation in the OpenAPI document -------------------------------

def _is_string(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "string" or any(s.get("type") == "string" for s in schema.get("anyOf", ()))


def openapi_probes(spec: dict[str, Any]) -> Iterator[Probe]:
    """One probe per string parameter, per string property of a JSON or form body, of every operation."""
    schemas = spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            params = op.get("parameters", [])

            def fill(bad: str | None = None, params: list[dict[str, Any]] = params, path: str = path) -> str:
                for p in (p for p in params if p["in"] == "path"):
                    value = "x%00" if p["name"] == bad else "x" if _is_string(p["schema"]) else "1"
                    path = path.replace("{" + p["name"] + "}", value)
                return path

            filled = fill()
            for p in params:
                if p["in"] == "query" and _is_string(p["schema"]):
                    yield Probe(method.upper(), filled, ["query", p["name"]], query={p["name"]: f"a{NUL}"})
                elif p["in"] == "path" and _is_string(p["schema"]):
                    yield Probe(method.upper(), fill(p["name"]), ["path", p["name"]])
            for content_type, media in op.get("requestBody", {}).get("content", {}).items():
                ref = media["schema"].get("$ref", "")
                props = schemas[ref.rsplit("/", 1)[-1]].get("properties", {}) if ref else {}
                for name, schema in props.items():
                    if _is_string(schema) and "json" in content_type:
                        yield Probe(method.upper(), filled, ["body", name], body={name: f"a{NUL}"})
                    elif _is_string(schema) and "form" in content_type:
                        yield Probe(method.upper(), filled, ["body", name], form={name: f"a{NUL}"})


def test_every_string_input_of_every_operation_refuses_nul(app: Any, client: TestClient,
                                                           as_user: Callable[[str, str], Caller]) -> None:
    headers = as_user("administrator", "150100").headers
    probes = list(openapi_probes(app.openapi()))
    assert len(probes) > 100, len(probes)  # the sweep found the inputs (about 150 in 2026-12)
    wrong = []
    for probe in probes:
        response = send(client, probe, headers, 0, "x")
        detail = response.json().get("detail") if response.status_code == 422 else None
        if not (isinstance(detail, list) and detail[0]["loc"] == probe.loc and "U+0000" in detail[0]["msg"]):
            wrong.append(f"{probe.method} {probe.path} {probe.loc}: {response.status_code} {response.text[:200]}")
    assert not wrong, "\n".join(wrong)
    assert client.get("/healthz").status_code == 200


def test_a_data_error_escaping_a_route_is_a_422_not_a_500(api_db: str, api_pool: Any) -> None:
    """The last safety net: whatever a route lets through to PostgreSQL and PostgreSQL refuses is the caller's."""
    app_settings = Settings(db=DbSettings(url=api_db), api=ApiSettings(jwt_secret=SECRET))
    app = create_app(app_settings, registry=CollectorRegistry(), pool=api_pool)

    @app.get("/probe/{n}")
    def probe(n: int, request: Request) -> dict[str, str]:
        text = "a\x00" if n == 0 else "\ud800"  # made inside the route: the edge rule never saw it
        with request.app.state.pool.connection() as conn:
            return {"echo": one_row(conn.execute("SELECT %s::text", (text,)))[0]}

    with TestClient(app) as client:
        for n in (0, 1):
            response = client.get(f"/probe/{n}")
            assert response.status_code == 422, response.text
            assert "cannot be stored" in response.json()["detail"][0]["msg"]
        assert client.get("/healthz").status_code == 200


# -- a short fuzz: schemathesis' valid requests, each with NUL appended to one of its strings ------

def _string_slots(value: Any) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every string inside a case's parameters or JSON/form body."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str):
                yield value, k
            else:
                yield from _string_slots(v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, str):
                yield value, i
            else:
                yield from _string_slots(v)


def inject_nul(case: Any, choice: int) -> bool:
    """Append NUL to one string of ``case`` (chosen by ``choice``); False when it carries no string."""
    slots = [*_string_slots(case.path_parameters or {}), *_string_slots(case.query or {})]
    if case.media_type in ("application/json", "application/x-www-form-urlencoded"):
        slots += list(_string_slots(case.body))
    if not slots:
        return False
    container, key = slots[choice % len(slots)]
    container[key] = container[key] + NUL
    return True


def fuzz(operation: Any, headers: dict[str, str], wrong: dict[str, str], sent: Counter[str]) -> None:
    """A few derandomized cases of one operation, each with NUL in one string; record the first wrong answer."""
    name = f"{operation.method.upper()} {operation.path}"

    @given(case=operation.as_strategy(), choice=st.integers(0, 999))
    @settings(max_examples=4, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any, choice: int) -> None:
        injected = inject_nul(case, choice)
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # in process, an exception escaping the app is the 500
            wrong.setdefault(name, f"{type(exc).__name__}: {str(exc)[:300]}")
            return
        sent["with NUL" if injected else "without strings"] += 1
        refused = response.status_code == 422 and "send it again without that character" in response.text
        if response.status_code >= 500 or (injected and not refused):
            wrong.setdefault(name, f"{response.status_code} {response.text[:300]}")

    run()


def test_fuzzed_requests_with_nul_get_422_never_500(app: Any, as_user: Callable[[str, str], Caller]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path_regex=STREAMS).exclude(path=LOGOUT)
    headers = as_user("administrator", "150100").headers
    wrong: dict[str, str] = {}
    sent = Counter[str]()
    for result in schema.get_all_operations():
        fuzz(operation_or_raise(result), headers, wrong, sent)
    assert sent["with NUL"] > 150, sent  # the fuzz really reached the strings
    assert not wrong, "\n".join(f"{op}: {why}" for op, why in wrong.items())
