"""The API's contract under schemathesis, the long run (issue 22 point 6; the CI-sized run is
tests/integration/api/test_api_contract.py):

    python -m bench.api_contract [--examples 25] [--seed 22] [--equipment 600] [--phases examples,coverage,...]

A fresh database on the PostgreSQL server (created here, dropped at the end) with a generated registry,
alerts and dead letters; the real app in process. Every caller runs every check of the installed schemathesis
in every phase (examples, coverage, fuzzing, stateful): nobody, each role, two banner inspectors as peers
(``object_level_authorization``), and a person who logs out. Prints per caller the requests, the statuses,
the failing (operation, check) pairs with a curl line each, and the machine; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from api.auth.users import token_for, upsert_user
from bench.machine import brief
from tests.api_contract import (
    CALLERS,
    PEERS,
    PHASES,
    Outcome,
    all_checks,
    build_app,
    peers_auth_file,
    run_contract,
    seed_rows,
)
from tests.services import create_database, drop_database, stored_callers

SECRET = "bench-api-contract-secret-of-at-least-32-bytes"


def line(outcome: Outcome, extra: str = "") -> str:
    """One caller's figures, and its failures (each with a curl line) when it has any."""
    statuses = " ".join(f"{s}×{n}" for s, n in sorted(outcome.statuses.items()))
    text = (f"{outcome.caller:<32} {outcome.requests:>7} requests  {outcome.server_errors} 5xx  "
            f"{len(outcome.failures)} failing  {outcome.elapsed_s:>6.1f} s  [{statuses}]{extra}")
    return text + ("\n" + outcome.report() if outcome.failures or outcome.errors else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_contract", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=25, help="examples per operation and phase (fuzzing)")
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--equipment", type=int, default=600, help="generated registry size")
    parser.add_argument("--phases", default=",".join(PHASES))
    args = parser.parse_args(argv)
    phases = tuple(args.phases.split(","))

    print(brief())
    print(f"checks ({len(all_checks())}): {', '.join(all_checks())}")
    print(f"phases: {', '.join(phases)}; {args.examples} examples; seed {args.seed}; {args.equipment} equipment")
    url = create_database(storage="plain")
    started = time.monotonic()
    try:
        seed_rows(url, equipment=args.equipment, seed=args.seed)
        app, pool = build_app(url, secret=SECRET)
        callers = stored_callers(url, SECRET)
        common = {"seed": args.seed, "max_examples": args.examples, "phases": phases}
        outcomes = [run_contract(app, caller="nobody", headers=None, **common)]
        print(line(outcomes[-1]), flush=True)
        for role, division in CALLERS:
            outcomes.append(run_contract(app, caller=f"{role}-{division}", headers=callers(role, division).headers,
                                         **common))
            print(line(outcomes[-1]), flush=True)
        tokens = {name: callers(*who).headers["Authorization"].removeprefix("Bearer ") for name, who in PEERS.items()}
        with tempfile.TemporaryDirectory() as tmp:
            auth_file = peers_auth_file(Path(tmp) / "wfc-auth.json", tokens)
            outcomes.append(run_contract(app, caller="peers " + "/".join(PEERS), headers=None,
                                         wfc={"path": str(auth_file), "peers": list(PEERS)}, **common))
        peers = outcomes[-1]
        print(line(peers, f"  replays as the other peer: {peers.identities[list(PEERS)[1]]}"), flush=True)
        with psycopg.connect(url) as conn:
            token = token_for(conn, upsert_user(conn, "logs-out", "a-long-bench-password", "league_inspector",
                                               "150100"), secret=SECRET, ttl_s=3600)
        outcomes.append(run_contract(app, caller="logs-out", headers={"Authorization": f"Bearer {token}"},
                                     only_logout=True, **common))
        print(line(outcomes[-1]), flush=True)
        pool.close()
    finally:
        drop_database(url)

    total = sum(o.requests for o in outcomes)
    failing = sum(len(o.failures) + len(o.errors) for o in outcomes)
    print(f"total: {total} requests, {sum(o.server_errors for o in outcomes)} server errors, {failing} failing "
          f"(operation, check) pairs or errors, {time.monotonic() - started:.0f} s")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
