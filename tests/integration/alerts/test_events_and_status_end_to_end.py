"""Discrete events and the gateway's last will, through the real broker, alert worker, database and API.

A trapped passenger is critical and latched: it stays after the device reports it cleared, until a
person resets it through the API. A safety valve lift and a low-water cut-off become alerts with the
catalogue's severity. A gateway whose connection drops without DISCONNECT is known offline at once
(the broker publishes its last will): every equipment behind it gets a no-data alert, cleared when
the gateway is back.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from alerts.worker import run as run_alerts
from api.app import create_app
from api.auth.users import upsert_user
from safewatch.contract import Event, GatewayState, Kind, build_topic, encode_event, encode_status
from safewatch.db import one_row
from safewatch.settings import ApiSettings
from simulators.fleet import Fleet, SimEquipment
from tests.waiting import wait_until

SELECT_ALERTS = """
SELECT a.id, e.code, a.rule_key, a.severity, a.state, a.active, a.latched, a.kind
FROM alerts a JOIN equipment e ON e.id = a.equipment_id
WHERE e.gateway_id LIKE %s AND a.kind IN ('event', 'no_data')
ORDER BY a.id
"""


def _alerts(pg_url: str, uid: str) -> dict[tuple[str, str], dict[str, Any]]:
    with psycopg.connect(pg_url) as c:
        cur = c.execute(SELECT_ALERTS, (f"t{uid}-%",))
        names = [d.name for d in cur.description or ()]
        return {(r[1], r[2]): dict(zip(names, r, strict=True)) for r in cur}


def test_events_latching_reset_and_last_will(settings, fleet, running, pg_url, uid):
    registry = fleet(30, seed=13)
    league = {g["id"]: g["league_code"] for g in registry.gateways}
    sim_eq = [SimEquipment(e["code"], e["category"], e["rated"], e["gateway_id"], league[e["gateway_id"]],
                           e["variety"]) for e in registry.equipment]
    lift = next(e for e in sim_eq if e.category == "3000")
    boiler = next(e for e in sim_eq if e.category == "1000")
    running(run_alerts, settings)
    sim = Fleet(settings, sim_eq, seed=2, client_prefix=f"sim-{uid}")
    now = int(time.time() * 1000)
    sim.connect(now - 60_000)
    sim.tick(now - 50_000, 5.0)

    def event(e: SimEquipment, kind: str, active: bool, ts: int) -> None:
        sim.mux.publish(e.gateway_id, build_topic(e.league, e.gateway_id, Kind.EVENT),
                        encode_event(Event(e.code, kind, ts, active)))

    event(lift, "passenger_trapped", True, now - 40_000)
    event(boiler, "safety_valve_lift", True, now - 39_000)
    event(boiler, "low_water_cutoff", True, now - 38_000)
    event(lift, "passenger_trapped", False, now - 20_000)  # the device says the passenger is out
    event(boiler, "safety_valve_lift", False, now - 19_000)
    assert sim.flush() == 0
    alerts = wait_until(lambda: _alerts(pg_url, uid), lambda a: (boiler.code, "event.safety_valve_lift") in a
                        and not a[(boiler.code, "event.safety_valve_lift")]["active"]
                        and not a.get((lift.code, "event.passenger_trapped"), {"active": True})["active"],
                        what="event alerts raised and the cleared ones reported")
    trapped = alerts[(lift.code, "event.passenger_trapped")]
    assert (trapped["severity"], trapped["state"], trapped["latched"]) == ("critical", "active_unack", True)
    valve = alerts[(boiler.code, "event.safety_valve_lift")]
    assert (valve["severity"], valve["state"], valve["latched"]) == ("major", "returned_unack", False)
    cutoff = alerts[(boiler.code, "event.low_water_cutoff")]
    assert (cutoff["severity"], cutoff["active"], cutoff["latched"]) == ("critical", True, True)

    # A person resets the latched alert through the API; the history names them.
    app_settings = settings.model_copy(update={"api": ApiSettings(jwt_secret="test-secret-" + uid * 3)})
    with psycopg.connect(pg_url) as c:
        upsert_user(c, f"resp-{uid}", "pw-" + uid, "emergency_responder", lift.league)
    with TestClient(create_app(app_settings, registry=CollectorRegistry())) as api:
        token = api.post("/api/v1/auth/token", data={"username": f"resp-{uid}", "password": "pw-" + uid}).json()
        api.headers["Authorization"] = f"Bearer {token['access_token']}"
        done = api.post(f"/api/v1/alerts/{trapped['id']}/reset", json={"reason": "released by the maintenance unit"})
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "normal"
        assert [(t["to_state"], t["actor"]) for t in done.json()["transitions"]] == [
            ("active_unack", "engine"), ("normal", f"resp-{uid}")]

    # The lift's gateway drops its connection: its last will says offline, at once.
    behind = [e.code for e in sim_eq if e.gateway_id == lift.gateway_id]
    sim.mux.drop(lift.gateway_id)
    offline = wait_until(lambda: _alerts(pg_url, uid),
                         lambda a: all((c, "no_data.gateway_offline") in a for c in behind),
                         what="a gateway-offline alert for every equipment behind the dropped gateway")
    assert {offline[(c, "no_data.gateway_offline")]["severity"] for c in behind} == {"major"}
    assert not any(k[1] == "no_data.gateway_offline" and k[0] not in behind for k in offline)
    sim.mux.reconnect(lift.gateway_id)
    sim.mux.publish(lift.gateway_id, build_topic(lift.league, lift.gateway_id, Kind.STATUS),
                    encode_status(GatewayState.ONLINE, int(time.time() * 1000)), retain=True)
    assert sim.flush() == 0
    back = wait_until(lambda: _alerts(pg_url, uid),
                      lambda a: not any(a[(c, "no_data.gateway_offline")]["active"] for c in behind),
                      what="the gateway-offline alerts cleared once it is back online")
    assert {back[(c, "no_data.gateway_offline")]["state"] for c in behind} == {"returned_unack"}
    sim.close()


def test_active_alerts_gauge_set_at_housekeeping(settings, fleet, running, pg_url, uid):
    """The worker's housekeeping raises overdue-inspection alerts and counts open alerts into a gauge."""
    registry = fleet(10, seed=17)
    codes = [e["code"] for e in registry.equipment]
    with psycopg.connect(pg_url) as c:
        c.execute("UPDATE equipment SET next_inspection_on = current_date - 40 WHERE code = ANY(%s)", (codes,))
        c.commit()
    metrics = running(run_alerts, settings)

    def overdue() -> int:
        with psycopg.connect(pg_url) as c:
            return one_row(c.execute("SELECT count(*) FROM alerts a JOIN equipment e ON e.id = a.equipment_id "
                                     "WHERE e.code = ANY(%s) AND a.rule_key = 'inspection.overdue' "
                                     "AND a.state = 'active_unack'", (codes,)))[0]

    # The first housekeeping runs before the worker reads its first batch; the gauge is set once it commits.
    wait_until(lambda: metrics.get_sample_value("safewatch_alerts_active",
                                                {"severity": "major", "state": "active_unack"}),
               lambda v: v is not None and v >= len(codes), what="the active-alerts gauge counting them")
    assert overdue() == len(codes)
