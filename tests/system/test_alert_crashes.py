"""The alert worker killed with kill -9 decides as if it had never crashed (issue 21, point 3).

Real `safewatch alerts` processes (a fixed client id: their broker session outlives them) against a
database of their own and the tests' Mosquitto. The two sequences the issue reports, each of which
made the worker miss or invent an alert from a state saved at an earlier graceful stop, then a short
version of bench.alerts.crash: random kill -9 moments, transitions compared with a never-stopped run.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import orjson
import psycopg
import pytest

from bench.alerts.crash import (
    LEAGUE,
    AlertProcess,
    Fleet,
    Publisher,
    create_rig_database,
    drop_database,
    make_fleet,
    run_trials,
)
from bench.ingest.instances import MOSQUITTO, PrivateBroker
from safewatch.contract import Kind, build_topic
from tests.services import TEST_DB_URL
from tests.waiting import wait_until

EVALUATED = "safewatch_alerts_readings_evaluated_total"
OPEN_HIGH = """
SELECT count(*) FROM alerts a JOIN equipment e ON e.id = a.equipment_id
WHERE e.code = %s AND a.rule_key = %s AND a.opened_at >= timestamptz 'epoch' + %s * interval '1 millisecond'
"""
ACTIVE = """
SELECT a.active FROM alerts a JOIN equipment e ON e.id = a.equipment_id
WHERE e.code = %s AND a.rule_key = %s AND a.closed_at IS NULL
"""
# The operator acknowledges the alert that returned to normal: it closes (ISA-18.2 returned_unack -> normal).
ACKNOWLEDGE = """
WITH closed AS (
    UPDATE alerts a SET state = 'normal', closed_at = clock_timestamp() FROM equipment e
    WHERE e.id = a.equipment_id AND e.code = %s AND a.rule_key = %s AND a.closed_at IS NULL
    RETURNING a.id)
INSERT INTO alert_transitions (alert_id, from_state, to_state, actor, reason)
SELECT id, 'returned_unack', 'normal', 'operator', 'acknowledged' FROM closed
"""


class Rig:
    """A fleet in a database of its own, a worker process for it and a publisher."""

    def __init__(self, broker_url: str) -> None:
        tag = uuid.uuid4().hex[:6]
        self.fleet: Fleet = make_fleet(tag)
        self.url = create_rig_database(TEST_DB_URL, self.fleet, seed_states={})
        self.worker = AlertProcess(self.url, broker_url, f"seq-{tag}", checkpoint_s=1.0)
        self.publisher = Publisher(broker_url, tag)
        self.boiler = next(code for code, category, _ in self.fleet.equipment if category == "1000")
        self.lift = next(code for code, category, _ in self.fleet.equipment if category == "3000")
        self.gateway = self.fleet.gateways[0]
        self.t0 = int(time.time() * 1000) - 3_600_000

    def telemetry(self, code: str, at_s: float, **values: float) -> None:
        payload = orjson.dumps({"readings": [{"equipment": code, "ts": self.t0 + int(at_s * 1000), "values": values}]})
        self.publisher.publish([(build_topic(LEAGUE, self.gateway, Kind.TELEMETRY), payload)])

    def scalar(self, sql: str, *args: object) -> object:
        with psycopg.connect(self.url) as c:
            row = c.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def evaluated(self, n: float) -> None:
        wait_until(lambda: self.worker.metric(EVALUATED), lambda v: v >= n, timeout=60, what=f"{n} readings evaluated")

    def close(self) -> None:
        if self.worker.running:
            self.worker.kill(signal.SIGKILL)
        self.publisher.close()
        drop_database(TEST_DB_URL, self.url)


@pytest.fixture
def rig(mqtt_url: str) -> Iterator[Rig]:
    r = Rig(mqtt_url)
    yield r
    r.close()


HIGH = "boiler.drum_pressure.high"  # above 0.96 x rated, after a 5 s on-delay


def test_a_breach_after_a_clear_and_a_kill_raises(rig: Rig) -> None:
    """Active at a SIGTERM; it clears and is acknowledged; kill -9; a 45 s breach at 1.0x rated pressure
    while the worker is down must raise (a state saved at the SIGTERM said the condition was active)."""
    w = rig.worker
    w.start()
    for s in (0, 5, 6):
        rig.telemetry(rig.boiler, s, drum_pressure=1.25)
    wait_until(lambda: rig.scalar(ACTIVE, rig.boiler, HIGH), lambda v: v is True, timeout=60, what="raised")
    assert w.kill(signal.SIGTERM) == 0
    w.start()
    rig.telemetry(rig.boiler, 20, drum_pressure=0.5)
    wait_until(lambda: rig.scalar(ACTIVE, rig.boiler, HIGH), lambda v: v is False, timeout=60, what="cleared")
    with psycopg.connect(rig.url) as c:
        c.execute(ACKNOWLEDGE, (rig.boiler, HIGH))
    w.kill(signal.SIGKILL)
    for s in range(100, 146, 5):  # the 45 s breach, published while the worker is down
        rig.telemetry(rig.boiler, s, drum_pressure=1.25)
    w.start()
    wait_until(lambda: rig.scalar(OPEN_HIGH, rig.boiler, HIGH, rig.t0 + 100_000), lambda n: n == 1, timeout=60,
               what="the breach's alert")
    assert rig.scalar(OPEN_HIGH, rig.boiler, HIGH, rig.t0 + 105_000) == 1  # raised when its on-delay ended


def test_an_on_delay_begun_before_a_restart_does_not_outlive_a_kill(rig: Rig) -> None:
    """An on-delay just begun at a SIGTERM, reset after the restart, then kill -9: a 1 s spike later must
    not raise (a state saved at the SIGTERM still had the on-delay running since long before)."""
    w = rig.worker
    w.start()
    rig.telemetry(rig.boiler, 0, drum_pressure=1.25)  # the on-delay begins
    rig.evaluated(1)
    assert w.kill(signal.SIGTERM) == 0
    w.start()
    rig.telemetry(rig.boiler, 2, drum_pressure=0.5)  # back to normal: the on-delay ends
    rig.evaluated(1)
    w.kill(signal.SIGKILL)
    rig.telemetry(rig.boiler, 60, drum_pressure=1.25)  # a 1 s spike
    rig.telemetry(rig.boiler, 61, drum_pressure=1.25)
    rig.telemetry(rig.boiler, 62, drum_pressure=0.5)
    rig.telemetry(rig.lift, 63, speed=3.6)  # a sentinel after the spike: over-speed raises at once
    w.start()
    wait_until(lambda: rig.scalar(OPEN_HIGH, rig.lift, "elevator.speed.high_high", rig.t0), lambda n: n == 1,
               timeout=60, what="the sentinel's alert")
    assert rig.scalar(OPEN_HIGH, rig.boiler, HIGH, rig.t0) == 0


@pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="needs the mosquitto binary for a private broker")
def test_a_breach_raised_before_a_broker_kill_clears_after_it() -> None:
    """The alert worker raised a breach's alert, not yet checkpointed; the broker is killed with kill -9 before
    any snapshot held those deliveries; after it, the gateway sends the return to normal (published while the
    broker was down), then its last seconds again. The alert must clear. (The worker went back to its last
    checkpoint and evaluated what came: the return to normal to a state that never saw the breach, then the
    breach again, older than it, ignored: the alert stayed active.)"""
    with PrivateBroker(options={"autosave_interval": "3600"}) as broker:
        rig = Rig(broker.url)
        try:
            w = rig.worker = AlertProcess(rig.url, broker.url, rig.worker.name, checkpoint_s=60.0)
            w.start()
            breach = [(s, 1.25) for s in (0, 5, 6)]
            for at_s, pressure in breach:
                rig.telemetry(rig.boiler, at_s, drum_pressure=pressure)
            wait_until(lambda: rig.scalar(ACTIVE, rig.boiler, HIGH), lambda v: v is True, timeout=60, what="raised")
            rig.publisher.close()
            broker.kill()
            broker.start()
            wait_until(lambda: sum('"subscribed"' in line for line in w.lines), lambda n: n >= 2, timeout=60,
                       what="the worker subscribed again")
            rig.publisher = Publisher(broker.url, f"{w.name}-again")
            rig.telemetry(rig.boiler, 20, drum_pressure=0.5)  # newer, sent first
            for at_s, pressure in breach:  # the gateway's re-send of its last seconds
                rig.telemetry(rig.boiler, at_s, drum_pressure=pressure)
            rig.telemetry(rig.lift, 21, speed=3.6)  # a sentinel after them: over-speed raises at once
            wait_until(lambda: rig.scalar(OPEN_HIGH, rig.lift, "elevator.speed.high_high", rig.t0),
                       lambda n: n == 1, timeout=60, what="the sentinel's alert")
            assert rig.scalar(ACTIVE, rig.boiler, HIGH) is False
            assert w.running
        finally:
            rig.close()


def test_random_kills_give_the_transitions_of_a_run_that_never_crashed(mqtt_url: str) -> None:
    """bench.alerts.crash, short: 12 trials of a random moment, each kill -9 but one in ten SIGTERM. The stream
    is seeded, so the rules it exercises are always the same; the kill moments are not."""
    out = run_trials(TEST_DB_URL, mqtt_url, trials=12, seed=13, checkpoint_s=0.3,
                     max_delay_s=1.0)
    assert out.own_exits == 0
    assert out.mismatches == [], "\n".join(out.mismatches)
    assert out.transitions > 100 and len(out.rules) >= 12, out.rules
