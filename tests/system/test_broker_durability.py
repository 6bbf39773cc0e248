"""A broker kill -9 loses at most the loss window docs/mqtt-contract.md states ("Delivery guarantees").

The shipped deploy/mosquitto/mosquitto.conf on a private Mosquitto; a persistent-session subscriber offline
(the broker queues for it, as during a database outage); a QoS 1 publisher that counts its PUBACKs fills a
backlog and then publishes steadily; kill -9 of the broker; restart; the subscriber comes back and counts what
arrives (bench/broker/durability.py, whose long version is ``python -m bench.broker``). Every acknowledged
message that never arrives must have been acknowledged within the stated window before the kill: the
autosave interval plus one second (Mosquitto saves when its whole-second clock has passed the interval),
plus the snapshot Mosquitto was writing when killed (it blocks its only thread, so it shows as the
longest stall of PUBACKs).
"""

from __future__ import annotations

import os

import pytest

from bench.broker.durability import run_trial
from bench.ingest.instances import MOSQUITTO

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="needs the mosquitto binary for a private broker"),
]

# docs/mqtt-contract.md, "Delivery guarantees": up to 6 s (autosave_interval 5 + 1 s) plus the snapshot being
# written at the kill.
STATED_WINDOW_S = 6.0
STEADY_S = 12.0  # longer than the window, so a snapshot-every-30-s broker loses more than the window
SLACK_S = 0.5  # PUBACK times are recorded once per publisher write (10 ms apart) or after a stall


def test_a_broker_kill_loses_only_what_it_acknowledged_within_the_stated_window():
    trial = run_trial({}, backlog=20_000, rate=5_000, steady_s=STEADY_S)
    assert trial.steady_acked > 0.5 * trial.rate * STEADY_S, "the broker did not keep up with the publisher"
    window = STATED_WINDOW_S + trial.longest_stall_s
    assert trial.lost_window_s <= window + SLACK_S, (
        f"{len(trial.lost):,} acknowledged messages lost, the first acknowledged {trial.lost_window_s:.2f} s before "
        f"the kill; the stated window is {window:.2f} s (6 s + a snapshot's "
        f"{trial.longest_stall_s:.2f} s)")
    # Whatever was acknowledged before the window is there, once at least (redeliveries are idempotent at ingest).
    assert len(trial.lost) <= trial.rate * (window + SLACK_S)
