"""The chaos suite, short: a counted stream through private PostgreSQL and Mosquitto and the ingest, alert and
notifier processes, with bad messages sprinkled in and, in sequence, kill -9 of each worker, a PostgreSQL
restart, a 10 s PostgreSQL outage and a kill -9 of the broker (bench/chaos/harness.py; the long version, with a
60 s outage, is ``python -m bench.chaos``). The broker's kill -9 once left one breach's alert uncleared (1 of 17,
in 2 of 3 runs): docs/decisions/alert-checkpoints.md has the cause and the fix.

Pass: no process exits but those killed, every valid reading stored once, every bad message dead-lettered
once, the ingest's RSS within its bound, exactly the expected alerts (0 missed, 0 invented).
"""

from __future__ import annotations

import os

import pytest

from bench.chaos.harness import ChaosConfig, chaos
from bench.ingest.instances import MOSQUITTO, PG_BIN

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not (PG_BIN / "initdb").exists() or not os.path.exists(MOSQUITTO),
                       reason="needs PostgreSQL server binaries (initdb) and mosquitto for private instances"),
]


def test_chaos_short():
    with chaos(ChaosConfig(), log=print) as run:
        result = run.run()
    print(result.summary())
    assert result.failures() == []
