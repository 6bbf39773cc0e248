"""Schemathesis over the API with every check it has, as one caller: the run the contract test and the bench share.

The engine is schemathesis' own (the one ``st run --checks all`` drives), in process against the ASGI app:
its phases (examples, coverage, fuzzing, stateful), its checks, its shrinking. Only the reporting is ours:
``run_contract`` returns what it saw as an ``Outcome`` (statuses, checks run, failures with a curl line).

Left out, for stated reasons:
- the server-sent event streams (/api/v1/dashboard/events, /api/v1/stream/…) never end by themselves, and the
  in-process transport reads a whole body before it answers;
- POST /api/v1/auth/logout ends every token of its caller, so it runs alone, as a caller made for it, last;
- ``positive_data_acceptance`` takes 422 as an answer to a schema-valid request: the API answers 422 for a
  domain rule the schema cannot state (a USCC check character, a reference to a unit that does not exist,
  a cursor it did not issue, a control character), as api/errors.py says. Any other refusal still fails it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import schemathesis
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from psycopg_pool import ConnectionPool
from schemathesis.checks import CHECKS
from schemathesis.config import SchemathesisConfig
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok
from schemathesis.engine import Status, events, from_schema
from schemathesis.schemas import APIOperation

from api.app import create_app
from api.auth.users import upsert_user
from safewatch.db import open_pool
from safewatch.registry.divisions import parse_divisions, shipped_divisions_text
from safewatch.registry.seed import demo_registry, insert_registry
from safewatch.settings import ApiSettings, DbSettings, Settings

STREAMS = r"^/api/v1/(dashboard/events|stream/.*)$"
LOGOUT = "/api/v1/auth/logout"
PHASES = ("examples", "coverage", "fuzzing", "stateful")
# schemathesis' defaults for positive_data_acceptance, and 422 (see the module docstring).
POSITIVE_EXPECTED = ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
# Who calls: every role, bound where its rights reach seeded rows (Hohhot 150100, its banner 150102).
CALLERS = [("administrator", "150100"), ("registry_clerk", "150100"), ("region_inspector", "150000"),
           ("league_inspector", "150100"), ("banner_inspector", "150102"), ("emergency_responder", "150100")]
# Whom a path's {username} names: a person of its own, so no run changes its caller (a password or role change
# revokes the caller's token, and the rest of its run would test nothing but 401).
EDIT_TARGET = "edit-target"
# Two banner inspectors of Hohhot: object_level_authorization checks neither reads the other's banner.
PEERS = {"east": ("banner_inspector", "150102"), "west": ("banner_inspector", "150103")}

INSERT_ALERTS = """
INSERT INTO alerts (equipment_id, rule_key, severity, state, active, division_code, league_code, message, opened_at,
                    updated_at)
SELECT e.id, 'elevator.passenger_trapped', 'critical', 'active_unack', true, e.banner_code, d.league_code,
       'seeded for the contract run', now(), now()
FROM equipment e JOIN divisions d ON d.code = e.banner_code
ORDER BY e.id LIMIT %(alerts)s
"""
INSERT_DEAD_LETTERS = """
INSERT INTO dead_letters (topic, gateway_id, equipment_code, reason, detail, payload)
SELECT 'se/v1/' || d.league_code || '/' || g.id || '/telemetry', g.id, e.code, 'unknown_metric',
       'seeded for the contract run', '{}'::bytea
FROM equipment e JOIN gateways g ON g.id = e.gateway_id JOIN divisions d ON d.code = e.banner_code
ORDER BY e.id LIMIT %(dead_letters)s
"""


def seed_rows(url: str, *, equipment: int, seed: int) -> None:
    """A generated registry (round-robin over every banner), alerts and dead letters for the callers to find."""
    registry = demo_registry(parse_divisions(shipped_divisions_text()), equipment, seed=seed)
    with psycopg.connect(url) as conn:
        insert_registry(conn, registry)
        conn.execute(INSERT_ALERTS, {"alerts": equipment // 4})
        conn.execute(INSERT_DEAD_LETTERS, {"dead_letters": equipment // 12})
        upsert_user(conn, EDIT_TARGET, "a-long-target-password", "banner_inspector", "150102")


def build_app(url: str, *, secret: str) -> tuple[FastAPI, ConnectionPool]:
    """An app of its own (its own login throttle and token cache) over ``url``; close the pool after."""
    pool = open_pool(url, min_size=1, max_size=4)
    settings = Settings(db=DbSettings(url=url),
                        api=ApiSettings(jwt_secret=secret, max_body_bytes=256 * 1024))
    return create_app(settings, registry=CollectorRegistry(), pool=pool), pool


def peers_auth_file(path: Path, tokens: Mapping[str, str]) -> Path:
    """A Web Fuzzing Commons auth file naming each peer with its fixed ``Authorization`` header."""
    path.write_text(json.dumps({"auth": [
        {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {token}"}]}
        for name, token in tokens.items()]}))
    return path


def all_checks() -> list[str]:
    """Every check the installed schemathesis registers (what ``--checks all`` runs)."""
    import schemathesis.specs.openapi.checks  # noqa: F401  # registers the OpenAPI checks (lazily imported)

    return list(CHECKS.get_all_names())


@dataclass(frozen=True)
class Failure:
    """One check that failed on one operation: its first occurrence, with a way to replay it."""

    operation: str
    check: str
    title: str
    message: str
    curl: str
    response: str


@dataclass
class Outcome:
    """What one run saw."""

    caller: str
    statuses: Counter[int] = field(default_factory=Counter)
    # (operation, status) → how often
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    # (check, "success" | "failure" | "skip" …) → how often it ran so.
    checks: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: dict[tuple[str, str], Failure] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    operations: set[str] = field(default_factory=set)
    # identity (a WFC peer's name; "" for the run's own headers) → requests sent as it
    identities: Counter[str] = field(default_factory=Counter)
    # phase → seconds since the run started when it finished
    phases_done_s: dict[str, float] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def checks_that_ran(self) -> set[str]:
        return {name for (name, status), n in self.checks.items() if status in ("success", "failure") and n}

    def report(self) -> str:
        """The failures and errors, each with its curl line, for an assertion message."""
        lines = [f"{self.caller}: {len(self.failures)} failing (operation, check), {len(self.errors)} errors; "
                 f"statuses {sorted(self.statuses.items())}; phases done at {self.phases_done_s} s"]
        for f in self.failures.values():
            lines += [f"- {f.operation} [{f.check}] {f.title}: {f.message[:300]}", f"  {f.curl[:600]}",
                      f"  -> {f.response[:300]}"]
        lines += [f"- error: {e[:500]}" for e in self.errors]
        return "\n".join(lines)


def config(*, seed: int, max_examples: int, headers: Mapping[str, str] | None, phases: Iterable[str],
           wfc: Mapping[str, Any] | None = None) -> SchemathesisConfig:
    """The run's configuration, as a schemathesis.toml would state it."""
    chosen = set(phases)
    unknown = chosen - set(PHASES)
    if unknown:
        raise ValueError(f"unknown phases {sorted(unknown)}; choose from {PHASES}")
    data: dict[str, Any] = {
        "seed": seed,
        "cache": {"enabled": False},  # no .schemathesis/ folder: every run starts from the seed alone
        "workers": 1,
        "checks": {"enabled": True, "positive_data_acceptance": {"expected-statuses": POSITIVE_EXPECTED}},
        "generation": {"max-examples": max_examples, "deterministic": True, "database": "none"},
        "phases": {name: {"enabled": name in chosen} for name in PHASES},
        "auth": {"auto-signup": False},  # the caller is the one given, never an account schemathesis makes
        "parameters": {"path.username": EDIT_TARGET},
    }
    if headers:
        data["headers"] = dict(headers)
    if wfc:
        data["auth"]["wfc"] = dict(wfc)
    return SchemathesisConfig.from_dict(data)


def run_contract(app: Any, *, caller: str, headers: Mapping[str, str] | None, seed: int = 1,
                 max_examples: int = 5, phases: Iterable[str] = PHASES, only_logout: bool = False,
                 wfc: Mapping[str, Any] | None = None) -> Outcome:
    """Run schemathesis with every check over the app's operations as ``caller`` (``headers``: its token)."""
    schema: Any = schemathesis.openapi.from_asgi(
        "/openapi.json", app, config=config(seed=seed, max_examples=max_examples, headers=headers, phases=phases,
                                            wfc=wfc))
    schema = schema.include(path=LOGOUT) if only_logout else schema.exclude(path_regex=STREAMS).exclude(path=LOGOUT)
    outcome = Outcome(caller)
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _record(outcome, event)
        elif isinstance(event, events.PhaseFinished):
            outcome.phases_done_s[event.phase.name.value] = round(time.monotonic() - started, 1)
        elif isinstance(event, events.NonFatalError):
            outcome.errors.append(f"{event.label}: {type(event.value).__name__}: {event.value}")
        elif isinstance(event, events.FatalError):
            outcome.errors.append(f"fatal: {type(event.exception).__name__}: {event.exception}")
    outcome.elapsed_s = time.monotonic() - started
    return outcome


def operation_or_raise(result: Ok[APIOperation] | Err[InvalidSchema]) -> APIOperation:
    """The operation, or the schema's error about it (an operation the document cannot describe)."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


def _record(outcome: Outcome, event: events.ScenarioFinished) -> None:
    recorder = event.recorder
    outcome.operations.add(recorder.label)
    for case_id, interaction in recorder.interactions.items():
        if interaction.response is not None:
            outcome.statuses[interaction.response.status_code] += 1
            node = recorder.cases.get(case_id)
            if node is not None:
                case = node.value
                outcome.answers[(f"{case.method.upper()} {case.operation.path}", interaction.response.status_code)] += 1
            outcome.identities[(node.value.auth_identity or "") if node is not None else ""] += 1
    for case_id, checks in recorder.checks.items():
        for check in checks:
            outcome.checks[(check.name, str(check.status))] += 1
            if check.status != Status.FAILURE or check.failure_info is None:
                continue
            case = recorder.cases[case_id].value
            operation = f"{case.method.upper()} {case.operation.path}"
            recorded = recorder.interactions.get(case_id)
            response = recorded.response if recorded is not None else None
            body = response.content.decode("utf-8", "replace") if response is not None and response.content else ""
            failure = check.failure_info.failure
            outcome.failures.setdefault((operation, check.name), Failure(
                operation, check.name, failure.title, str(failure.message), check.failure_info.code_sample,
                f"{response.status_code if response is not None else '-'} {body}"))
