"""Through the real broker and database: the simulators' injected faults become alerts, and a replay of
the recorded stream through the pure engine raises exactly the alerts the live worker stored.

The fleet publishes 30 minutes of event time (5 s ticks) as fast as the broker takes it, starting in
the past; every safety-limit fault must be alerted. The figures printed (run with ``-s``) are the
latency from the fault's first reading to the alert (event time: how long the engine's rules took to be
sure), and from the publish of the reading that raised it to the alert committed (wall time).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import psycopg

from alerts.engine.rules import RuleKind
from alerts.engine.step import RaiseAlert
from alerts.store import load_equipment_by_codes
from alerts.worker import Engine
from alerts.worker import run as run_alerts
from safewatch.mqtt import Delivery
from simulators.faults import Fault
from simulators.fleet import Fleet, SimEquipment
from tests.waiting import wait_until

TICK_S = 5.0
SPAN_MS = 30 * 60_000
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
# (category, fault kind, start minute, minutes): each crosses a safety limit or trips a protection. Two
# act only when the equipment does: a receiver's failed unloader while its compressor runs, a runaway
# while the car travels; their windows are long enough for that to happen at 10:00 local time (checked
# offline over 16 generated fleets: every fault below was alerted in each).
SAFETY_FAULTS = (("1000", "overpressure", 5, 6), ("1000", "feed_pump_failure", 8, 10), ("2000", "overpressure", 6, 22),
                 ("3000", "passenger_trapped", 7, 8), ("3000", "overspeed", 5, 24))
SELECT_ALERTS = """
SELECT e.code, a.rule_key, (extract(epoch FROM a.opened_at) * 1000)::bigint AS opened_ms,
       extract(epoch FROM a.committed_at)::float8 AS committed_s, a.severity, a.state
FROM alerts a JOIN equipment e ON e.id = a.equipment_id
WHERE e.gateway_id LIKE %s AND a.kind <> 'inspection'
ORDER BY a.id
"""


def _sim_equipment(registry) -> list[SimEquipment]:
    league = {g["id"]: g["league_code"] for g in registry.gateways}
    return [SimEquipment(e["code"], e["category"], e["rated"], e["gateway_id"], league[e["gateway_id"]],
                         e["variety"]) for e in registry.equipment]


def _alerts(pg_url: str, uid: str) -> list[dict[str, Any]]:
    with psycopg.connect(pg_url) as c:
        cur = c.execute(SELECT_ALERTS, (f"t{uid}-%",))
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, r, strict=True)) for r in cur]


def test_safety_faults_alerted_and_replay_gives_the_same_alerts(settings, fleet, running, pg_url, uid):
    registry = fleet(60, seed=11)
    sim_eq = _sim_equipment(registry)
    # The models follow the local clock (traffic, load): the run replays the latest 10:00 Beijing time that
    # is over 40 minutes ago, so the test behaves the same whatever hour it runs at.
    now = int(time.time() * 1000)
    start = (now - SPAN_MS - 10 * 60_000 - 2 * HOUR_MS) // DAY_MS * DAY_MS + 2 * HOUR_MS
    faults, used = [], set()
    for category, kind, at_min, minutes in SAFETY_FAULTS:
        e = next(x for x in sim_eq if x.category == category and x.code not in used)
        used.add(e.code)
        faults.append(Fault(e.code, kind, start + at_min * 60_000, start + (at_min + minutes) * 60_000))

    metrics = running(run_alerts, settings)
    sim = Fleet(settings, sim_eq, seed=5, client_prefix=f"sim-{uid}")
    recorded: list[tuple[str, bytes]] = []
    published_at: dict[int, float] = {}  # tick time → wall time it was handed to the broker
    sim.connect(start)

    def evaluated() -> float:
        return metrics.get_sample_value("safewatch_alerts_readings_evaluated_total") or 0.0

    for tick in range(int(SPAN_MS / (TICK_S * 1000)) + 1):
        t = start + int(tick * TICK_S * 1000)
        published_at[t] = time.time()
        recorded += [(o.topic, o.payload) for o in sim.tick(t, TICK_S, faults) if o.action == "publish"]
        if tick % 8 == 7:
            # Let the worker catch up every 8 ticks (480 messages): the shared broker keeps Mosquitto's
            # default queue of 1000 messages per client and drops QoS 1 messages beyond it.
            assert sim.flush() == 0
            wait_until(evaluated, lambda n: n >= sim.counters.readings, what="the worker caught up")
    assert sim.flush() == 0
    sim.close()

    def detected(rows: list[dict[str, Any]]) -> dict[Fault, dict[str, Any]]:
        """The first alert of each fault's equipment inside its window (+ 60 s)."""
        found = {}
        for f in faults:
            hits = [r for r in rows if r["code"] == f.code and f.start_ms <= r["opened_ms"] <= f.end_ms + 60_000]
            if hits:
                found[f] = min(hits, key=lambda r: r["opened_ms"])
        return found

    rows = wait_until(lambda: _alerts(pg_url, uid), lambda r: len(detected(r)) == len(faults), timeout=60,
                      what="an alert for every injected safety fault")

    found = detected(rows)
    event_latency = {f.kind + "@" + f.code[:4]: (a["opened_ms"] - f.start_ms) / 1000 for f, a in found.items()}
    wall_latency = [a["committed_s"] - published_at[max(t for t in published_at if t <= a["opened_ms"])]
                    for a in found.values()]
    print("\nfault → first alert (event time, s):", event_latency)
    print(f"reading published → alert committed (wall, s): p50 {statistics.median(wall_latency):.3f} "
          f"max {max(wall_latency):.3f}")
    assert all(s >= 0 for s in event_latency.values()), event_latency
    for f in faults:  # each fault reached a safety severity (the first alert may be an early warning)
        assert any(r["code"] == f.code and r["severity"] in ("critical", "major")
                   and f.start_ms <= r["opened_ms"] <= f.end_ms + 60_000 for r in rows), f
    # Faults elsewhere raised nothing on healthy equipment (thresholds only: no anomaly before learning).
    assert all(any(r["code"] == f.code for f in faults) for r in rows), [r for r in rows if r["code"] not in used]

    # Same input, same alerts: the recorded stream through the pure engine, twice, in different batches.
    with psycopg.connect(pg_url) as c:
        infos = load_equipment_by_codes(c, [e.code for e in sim_eq], [])
    replays = []
    for batch in (1, 97):
        engine = Engine()
        engine.add(infos)
        raised: dict[tuple[str, str], int] = {}
        code_of = {i.id: i.code for i in infos}
        for i in range(0, len(recorded), batch):
            deliveries = [Delivery(t, p, 0, 1, 0, 0.0) for t, p in recorded[i:i + batch]]
            for effect in engine.evaluate(deliveries, int(time.time() * 1000))[0]:
                if isinstance(effect, RaiseAlert) and effect.kind is not RuleKind.INSPECTION:
                    raised.setdefault((code_of[effect.equipment_id], effect.rule_key), effect.ts_ms)
        replays.append(raised)
    assert replays[0] == replays[1]
    live = {(r["code"], r["rule_key"]): r["opened_ms"] for r in _alerts(pg_url, uid)}
    differing = {k: (live.get(k), replays[0].get(k)) for k in set(live) | set(replays[0])
                 if live.get(k) != replays[0].get(k)}
    assert not differing, f"(equipment, rule): (live opened_ms, replay) differ: {differing}"
