"""The alert workflow through the real API and database: jurisdiction, every action, history, overrides, KPIs.

Alerts are opened through the alert worker's own store code (`write_effects`), as the worker does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from alerts.engine.rules import RuleKind
from alerts.engine.step import ClearAlert, EquipmentState, RaiseAlert, event_effects
from alerts.store import expire_shelves, record_flood, write_effects
from alerts.worker import Engine, housekeeping
from safewatch.contract import Severity
from tests.integration.alerts.conftest import first_of, row

NOW = datetime.now(UTC).replace(microsecond=0)
NOW_MS = int(NOW.timestamp() * 1000)


def _open(db: str, infos, effect) -> int:
    with psycopg.connect(db) as conn, conn.transaction():
        [applied] = write_effects(conn, [effect], {i.id: i for i in infos.values()})
    return applied.alert_id


def _raise(info, rule_key: str, severity: Severity = Severity.MAJOR, ts_ms: int = NOW_MS, **kw) -> RaiseAlert:
    return RaiseAlert(info.id, rule_key, severity, "vessel_pressure", 0.78, 0.75, ts_ms,
                      f"test {rule_key}", **kw)


def test_workflow_within_jurisdiction(api_client, as_user, alerts_db, equipment_infos):
    vessel = first_of(equipment_infos, "2000")
    alert_id = _open(alerts_db, equipment_infos, _raise(vessel, "vessel.pressure.high"))
    banner = as_user("banner_inspector", vessel.banner_code)
    other = next(i for i in equipment_infos.values() if i.league_code != vessel.league_code)
    stranger = as_user("banner_inspector", other.banner_code)
    league = as_user("league_inspector", vessel.league_code)

    listed = api_client.get("/api/v1/alerts", params={"equipment": vessel.code, "kind": "threshold"},
                            headers=banner.headers).json()["items"]
    assert [a["id"] for a in listed] == [alert_id] and listed[0]["state"] == "active_unack"
    assert api_client.get(f"/api/v1/alerts/{alert_id}", headers=stranger.headers).status_code == 404
    assert alert_id not in [a["id"] for a in api_client.get("/api/v1/alerts", headers=stranger.headers).json()["items"]]
    clerk = as_user("registry_clerk", "150000")
    assert api_client.post(f"/api/v1/alerts/{alert_id}/acknowledge", json={}, headers=clerk.headers).status_code == 403

    r = api_client.post(f"/api/v1/alerts/{alert_id}/shelve", json={"reason": "sensor being replaced", "minutes": 30},
                        headers=banner.headers)
    assert r.status_code == 200, r.text
    shelved = r.json()
    assert shelved["state"] == "shelved" and shelved["shelved_by"] == banner.username
    until = datetime.fromisoformat(shelved["shelved_until"])
    assert timedelta(minutes=29) < until - datetime.now(UTC) <= timedelta(minutes=30)
    assert api_client.post(f"/api/v1/alerts/{alert_id}/acknowledge", json={},
                           headers=banner.headers).status_code == 409
    assert api_client.post(f"/api/v1/alerts/{alert_id}/unshelve", json={"reason": "replaced"},
                           headers=banner.headers).json()["state"] == "active_unack"

    # Shelving ends by itself at its expiry (the worker's housekeeping, at an explicit now).
    api_client.post(f"/api/v1/alerts/{alert_id}/shelve", json={"minutes": 5}, headers=banner.headers)
    with psycopg.connect(alerts_db) as conn, conn.transaction():
        assert expire_shelves(conn, now=datetime.now(UTC) + timedelta(minutes=4), leagues=[]) == 0
        assert expire_shelves(conn, now=datetime.now(UTC) + timedelta(minutes=6), leagues=[]) == 1

    r = api_client.post(f"/api/v1/alerts/{alert_id}/assign", json={"assignee": league.username}, headers=banner.headers)
    assert r.status_code == 200 and r.json()["assignee"] == league.username
    r = api_client.post(f"/api/v1/alerts/{alert_id}/assign", json={"assignee": stranger.username},
                        headers=banner.headers)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "assignee"]
    api_client.post(f"/api/v1/alerts/{alert_id}/comments", json={"text": "unloader valve checked"},
                    headers=league.headers)
    assert api_client.post(f"/api/v1/alerts/{alert_id}/comments", json={"text": ""},
                           headers=league.headers).status_code == 422
    assert api_client.post(f"/api/v1/alerts/{alert_id}/acknowledge", json={"reason": "on it"},
                           headers=league.headers).json()["state"] == "active_ack"
    with psycopg.connect(alerts_db) as conn, conn.transaction():
        write_effects(conn, [ClearAlert(vessel.id, "vessel.pressure.high", "vessel_pressure", 0.6, NOW_MS + 60_000)],
                      {vessel.id: vessel})

    detail = api_client.get(f"/api/v1/alerts/{alert_id}", headers=league.headers).json()
    assert detail["state"] == "normal" and detail["closed_at"] and detail["cleared_at"]
    assert [(t["from_state"], t["to_state"], t["actor"]) for t in detail["transitions"]] == [
        (None, "active_unack", "engine"),
        ("active_unack", "shelved", banner.username), ("shelved", "active_unack", banner.username),
        ("active_unack", "shelved", banner.username), ("shelved", "active_unack", "engine"),
        ("active_unack", "active_ack", league.username), ("active_ack", "normal", "engine")]
    assert "sensor being replaced" in detail["transitions"][1]["reason"]
    assert detail["transitions"][4]["reason"] == "shelving expired"
    assert [(c["kind"], c["author"]) for c in detail["comments"]] == [("assign", banner.username),
                                                                     ("comment", league.username)]


def test_trapped_passenger_is_latched_until_reset_and_never_shelved(api_client, as_user, alerts_db,
                                                                   equipment_infos):
    lift = first_of(equipment_infos, "3000")
    state, [effect] = event_effects(lift.id, (), EquipmentState(), event_type="passenger_trapped", active=True,
                                    ts_ms=NOW_MS)
    alert_id = _open(alerts_db, equipment_infos, effect)
    responder = as_user("emergency_responder", lift.league_code)
    alert = api_client.get(f"/api/v1/alerts/{alert_id}", headers=responder.headers).json()
    assert (alert["severity"], alert["latched"], alert["kind"]) == ("critical", True, "event")
    r = api_client.post(f"/api/v1/alerts/{alert_id}/shelve", json={}, headers=responder.headers)
    assert r.status_code == 409 and "cannot be shelved" in r.json()["detail"][0]["msg"]
    r = api_client.post(f"/api/v1/alerts/{alert_id}/reset", json={}, headers=responder.headers)
    assert r.status_code == 409 and "still present" in r.json()["detail"][0]["msg"]
    # The device reports the passenger out: the alert stays, latched, until a person resets it.
    _, [clear] = event_effects(lift.id, (), state, event_type="passenger_trapped", active=False, ts_ms=NOW_MS + 600_000)
    with psycopg.connect(alerts_db) as conn, conn.transaction():
        write_effects(conn, [clear], {lift.id: lift})
    alert = api_client.get(f"/api/v1/alerts/{alert_id}", headers=responder.headers).json()
    assert alert["state"] == "active_unack" and not alert["active"] and alert["latched"]
    done = api_client.post(f"/api/v1/alerts/{alert_id}/reset", json={"reason": "passenger released at 7F"},
                           headers=responder.headers).json()
    assert done["state"] == "normal" and done["transitions"][-1]["actor"] == responder.username


def test_suppression_by_design_and_out_of_service(alerts_db, equipment_infos):
    vessel = first_of(equipment_infos, "2000", skip=1)
    engine = Engine()
    engine.add(equipment_infos.values())
    child = _open(alerts_db, equipment_infos,
                  _raise(vessel, "vessel.pressure.high", suppressed_by="vessel.pressure.high_high"))
    with psycopg.connect(alerts_db) as conn:
        assert row(conn, "SELECT state, suppressed_by FROM alerts WHERE id = %s", child) == (
            "suppressed", "vessel.pressure.high_high")
        with conn.transaction():  # the cause cleared while the child is still active: it is annunciated
            write_effects(conn, [_raise(vessel, "vessel.pressure.high", ts_ms=NOW_MS + 1000)], {vessel.id: vessel})
        assert row(conn, "SELECT state FROM alerts WHERE id = %s", child) == ("active_unack",)
        # The equipment is taken out of use (停用): its open alerts are suppressed, and released when back.
        with conn.transaction():
            conn.execute("UPDATE equipment SET status = 'suspended' WHERE id = %s", (vessel.id,))
            housekeeping(conn, engine, now=NOW, leagues=[])
        assert row(conn, "SELECT state, suppressed_by FROM alerts WHERE id = %s", child) == (
            "suppressed", "equipment_status")
        with conn.transaction():
            conn.execute("UPDATE equipment SET status = 'in_use' WHERE id = %s", (vessel.id,))
            housekeeping(conn, engine, now=NOW, leagues=[])
        assert row(conn, "SELECT state FROM alerts WHERE id = %s", child) == ("active_unack",)
        reasons = [r[0] for r in conn.execute("SELECT reason FROM alert_transitions WHERE alert_id = %s ORDER BY id",
                                              (child,))]
    assert "covered by its cause vessel.pressure.high_high" in reasons[0]
    assert any("out of service (停用)" in r for r in reasons) and reasons[-1] == "the equipment is back in use"


def test_overdue_inspection_raised_once_by_housekeeping(alerts_db, equipment_infos):
    engine = Engine()
    now = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    with psycopg.connect(alerts_db) as conn:
        # A boiler inspected on time, with no inspection alert of its own yet.
        [boiler_id] = row(conn, "SELECT min(e.id) FROM equipment e WHERE e.category = '1000' "
                                "AND e.next_inspection_on > '2026-12-01' AND NOT EXISTS "
                                "(SELECT 1 FROM alerts a WHERE a.equipment_id = e.id)")
        boiler = next(i for i in equipment_infos.values() if i.id == boiler_id)
        with conn.transaction():
            conn.execute("UPDATE equipment SET next_inspection_on = '2026-11-01' WHERE id = %s", (boiler.id,))
            first = housekeeping(conn, engine, now=now, leagues=[])
        with conn.transaction():
            again = housekeeping(conn, engine, now=now, leagues=[])
        mine = [a for a in first if row(conn, "SELECT equipment_id FROM alerts WHERE id = %s", a.alert_id)[0]
                == boiler.id]
        assert len(mine) == 1 and not any(a.alert_id == mine[0].alert_id for a in again)
        kind, message = row(conn, "SELECT kind, message FROM alerts WHERE id = %s", mine[0].alert_id)
        assert kind == RuleKind.INSPECTION and "overdue by 24 d" in message
        with conn.transaction():  # inspected: the alert returns to normal
            conn.execute("UPDATE equipment SET next_inspection_on = '2027-11-01' WHERE id = %s", (boiler.id,))
            housekeeping(conn, engine, now=now, leagues=[])
        assert row(conn, "SELECT state FROM alerts WHERE id = %s", mine[0].alert_id) == ("returned_unack",)


def test_rule_overrides_reach_the_engine(api_client, as_user, alerts_db, equipment_infos):
    vessel = first_of(equipment_infos, "2000", skip=2)
    inspector = as_user("banner_inspector", vessel.banner_code)
    url = f"/api/v1/alerts/rules/overrides/{vessel.code}/vessel.pressure.high"
    r = api_client.put(url, json={"limit_value": 0.7, "on_delay_s": 0, "reason": "older receiver, derated"},
                       headers=inspector.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["limit_value"], r.json()["updated_by"]) == (0.7, inspector.username)
    bad = api_client.put(f"/api/v1/alerts/rules/overrides/{vessel.code}/elevator.speed.high",
                         json={"limit_value": 2, "reason": "x"}, headers=inspector.headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "rule_key"]
    empty = api_client.put(url, json={"reason": "nothing"}, headers=inspector.headers)
    assert empty.status_code == 422
    responder = as_user("emergency_responder", vessel.banner_code)
    assert api_client.put(url, json={"limit_value": 0.7, "reason": "x"}, headers=responder.headers).status_code == 403
    other = next(i for i in equipment_infos.values() if i.league_code != vessel.league_code and i.category == "2000")
    assert api_client.put(f"/api/v1/alerts/rules/overrides/{other.code}/vessel.pressure.high",
                          json={"limit_value": 0.7, "reason": "x"}, headers=inspector.headers).status_code == 404
    listed = api_client.get("/api/v1/alerts/rules/overrides", params={"equipment": vessel.code},
                            headers=inspector.headers).json()
    assert [o["rule_key"] for o in listed] == ["vessel.pressure.high"]
    catalogue = api_client.get("/api/v1/alerts/rules", params={"category": "2000"}, headers=inspector.headers).json()
    assert {"threshold", "rate_of_change", "flatline", "out_of_range", "no_data", "anomaly", "inspection"} <= {
        r["kind"] for r in catalogue}

    engine = Engine()
    with psycopg.connect(alerts_db) as conn, conn.transaction():
        housekeeping(conn, engine, now=NOW, leagues=[])
    [rule] = [r for r in engine.rules_for(vessel.id) if r.key == "vessel.pressure.high"]
    assert rule.limit.absolute == 0.7 and rule.on_delay_s == 0
    assert api_client.delete(url, headers=inspector.headers).status_code == 204
    assert api_client.delete(url, headers=inspector.headers).status_code == 404


def test_kpis_per_division(api_client, as_user, alerts_db, equipment_infos):
    banner = "150802"  # 五原县: nothing else in these tests raises there
    mine = [i for i in equipment_infos.values() if i.banner_code == banner]
    t0 = (NOW_MS - 2 * 3600_000) // 600_000 * 600_000  # on a 10-minute boundary: one interval holds all
    # One rule raised on every equipment of the banner (the noisiest), the rest once each: 12 alerts in 6 min.
    keys = ["kpi.noisy"] * len(mine) + [f"kpi.once.{n:02d}" for n in range(12 - len(mine))]
    effects = [RaiseAlert(mine[n % len(mine)].id, key, Severity.MINOR, None, None, None, t0 + n * 30_000, "kpi test",
                          kind=RuleKind.THRESHOLD, chattering=n == 0) for n, key in enumerate(keys)]
    engine = Engine()
    engine.add(equipment_infos.values())
    with psycopg.connect(alerts_db) as conn, conn.transaction():
        applied = write_effects(conn, effects, engine.equipment)
        floods = engine.floods_after(applied)
        for division, change, ts_ms, peak in floods:
            record_flood(conn, division=division, started=change == "started", ts_ms=ts_ms, peak=peak)
    assert [(d, str(c), p) for d, c, _, p in floods] == [(banner, "started", 12)]
    league = as_user("league_inspector", "150800")
    k = api_client.get("/api/v1/kpis", params={"hours": 3, "until": NOW.isoformat()}, headers=league.headers).json()
    assert k["group_level"] == "banner"
    [d] = [d for d in k["divisions"] if d["division_code"] == banner]
    assert (d["alerts"], d["annunciated"], d["peak_10min"], d["floods"], d["chattering"]) == (12, 12, 12, 1, 1)
    assert d["alerts_per_hour"] == 4.0 and d["standing"] == 12 and d["stale"] == 0
    assert (d["top_rules"][0]["rule_key"], d["top_rules"][0]["count"]) == ("kpi.noisy", len(mine))
    assert len(d["top_rules"]) == 10 and all(r["count"] == 1 for r in d["top_rules"][1:])
    later = api_client.get("/api/v1/kpis", params={"hours": 3, "until": NOW.isoformat(), "stale_hours": 1},
                           headers=league.headers).json()
    assert next(d for d in later["divisions"] if d["division_code"] == banner)["stale"] == 12
    region = api_client.get("/api/v1/kpis", params={"hours": 3, "until": NOW.isoformat()},
                            headers=as_user("region_inspector", "150000").headers).json()
    assert region["group_level"] == "league" and "150800" in [d["division_code"] for d in region["divisions"]]
    other = as_user("league_inspector", "150100")
    assert banner not in [d["division_code"] for d in api_client.get(
        "/api/v1/kpis", params={"hours": 3, "until": NOW.isoformat()}, headers=other.headers).json()["divisions"]]
