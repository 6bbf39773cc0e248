"""The fuzz through the running system, short (issue 21): `python -m bench.fuzz system`'s run at 4,000 messages.

Private PostgreSQL and Mosquitto; `safewatch ingest` and `safewatch alerts` as processes; a fleet's gateways
reporting every second of event time with steam boilers breaching in turn, half the messages mutated (U+0000
and control characters, lone surrogates, huge and deeply nested arrays, NaN/Infinity, duplicate keys, wrong
types, oversized numbers and payloads, truncation) and a few published twice (bench/fuzz/system.py). Checked
twice, after 2,000 messages and at the end, with the processes running.

Pass: no process exits; every valid reading stored once and nothing else; every bad message dead-lettered
once and nothing else; each process's RSS within the bound; the alert worker's transitions equal, per
(equipment, rule) and in order, those of the pure engine run message by message over the same stream.
"""

from __future__ import annotations

import os

import pytest

from bench.fuzz.system import SystemConfig, system_run
from bench.ingest.instances import MOSQUITTO, PG_BIN

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not (PG_BIN / "initdb").exists() or not os.path.exists(MOSQUITTO),
                       reason="needs PostgreSQL server binaries (initdb) and mosquitto for private instances"),
]


def test_a_mutated_stream_through_the_running_system():
    cfg = SystemConfig(messages=4_000, equipment=30, verify_every=2_000, wait_s=180.0)
    with system_run(cfg, log=print) as run:
        counts = run.run()
    print(counts.summary())
    assert counts.failures() == []
    assert counts.verified == cfg.messages
    assert counts.mutated > 1_500 and counts.dead_letters > 1_000 and counts.stored_readings > 4_000
    assert counts.reference_transitions > 20 and counts.reference_breach_alerts > 0  # the comparison had substance
