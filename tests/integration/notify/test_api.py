"""The escalation API: policies edited through it drive the notifier; contacts kept within a
jurisdiction; response-time records and per-division statistics."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from api.app import create_app
from api.auth.users import token_for, upsert_user
from safewatch.settings import ApiSettings, DbSettings, Settings
from tests.integration.notify.conftest import add_contact, make_site, open_alert, query
from tests.waiting import wait_until

SECRET = "test-secret-for-the-escalation-api"


@pytest.fixture(scope="module")
def client(notify_url: str) -> Iterator[TestClient]:
    settings = Settings(db=DbSettings(url=notify_url), api=ApiSettings(jwt_secret=SECRET))
    with TestClient(create_app(settings, registry=CollectorRegistry())) as c:
        yield c


@pytest.fixture(scope="module")
def auth(notify_url: str):
    def headers(role: str, division: str) -> dict[str, str]:
        username = f"{role}-{division}"
        with psycopg.connect(notify_url) as conn:
            user_id = upsert_user(conn, username, "a-long-test-password", role, division)
            token = token_for(conn, user_id, secret=SECRET, ttl_s=3600)
        return {"Authorization": f"Bearer {token}"}

    return headers


def _policy(client, auth, severity):
    rows = client.get("/api/v1/escalation-policies", headers=auth("banner_inspector", "150102")).json()
    return next(p for p in rows if p["severity"] == severity and p["category"] is None)


def test_policies_are_data_edited_through_the_api_and_the_notifier_follows(client, auth, notify_url, sink, notifier):
    region = auth("region_inspector", "150000")
    listed = client.get("/api/v1/escalation-policies", headers=region).json()
    assert {p["severity"]: p["open_levels"] for p in listed if p["category"] is None} == {
        "critical": ["banner", "league", "region"], "major": ["banner"], "minor": ["banner"], "warning": ["banner"]}
    minor = _policy(client, auth, "minor")
    body = {**{k: minor[k] for k in ("severity", "category", "max_level", "banner_ack_s", "league_ack_s",
                                      "renotify_s")}, "open_levels": ["league", "banner"], "max_level": "league"}
    r = client.put(f"/api/v1/escalation-policies/{minor['id']}", json=body, headers=region)
    assert r.status_code == 200, r.text
    assert r.json()["open_levels"] == ["banner", "league"] and r.json()["updated_by"] == "region_inspector-150000"

    site = make_site(notify_url, "150104")
    add_contact(notify_url, "150100", "呼和浩特 duty", [("webhook", sink.url("/league"), None)])
    notifier().start()
    alert_id = open_alert(notify_url, site.equipment[0], severity="minor")
    (req,) = sink.wait(lambda rs: len(rs) >= 1, what="league notified at opening under the edited policy")
    assert req.path == "/league" and req.json()["alerts"][0]["labels"]["level"] == "league"
    assert query(notify_url, "SELECT level FROM alerts WHERE id = %s", alert_id) == [("league",)]


@pytest.mark.parametrize(("change", "status", "loc"), [
    ({"open_levels": ["region"], "max_level": "league"}, 422, ["body", "max_level"]),
    ({"open_levels": []}, 422, ["body", "open_levels"]),
    ({"banner_ack_s": 0}, 422, ["body", "banner_ack_s"]),
    ({"severity": "urgent"}, 422, ["body", "severity"]),
    ({"category": "elevator"}, 422, ["body", "category"]),
])
def test_bad_policies_name_the_field(client, auth, change, status, loc):
    body = {"severity": "major", "category": "3000", "open_levels": ["banner"], "max_level": "region",
            "banner_ack_s": 60, "league_ack_s": 60, "renotify_s": None, **change}
    r = client.post("/api/v1/escalation-policies", json=body, headers=auth("region_inspector", "150000"))
    assert r.status_code == status, r.text
    assert r.json()["detail"][0]["loc"][:2] == loc


def test_category_policies_are_created_and_deleted_defaults_kept(client, auth):
    region, banner = auth("administrator", "150000"), auth("banner_inspector", "150102")
    body = {"severity": "major", "category": "3000", "open_levels": ["banner", "league"], "max_level": "region",
            "banner_ack_s": 120, "league_ack_s": 300, "renotify_s": 600}
    assert client.post("/api/v1/escalation-policies", json=body, headers=banner).status_code == 403
    league_admin = client.post("/api/v1/escalation-policies", json=body, headers=auth("administrator", "150100"))
    assert league_admin.status_code == 403 and "whole region" in league_admin.json()["detail"][0]["msg"]
    created = client.post("/api/v1/escalation-policies", json=body, headers=region)
    assert created.status_code == 201, created.text
    again = client.post("/api/v1/escalation-policies", json=body, headers=region)
    assert again.status_code == 409 and "edit it with PUT" in again.json()["detail"][0]["msg"]
    default = _policy(client, auth, "major")
    assert client.delete(f"/api/v1/escalation-policies/{default['id']}", headers=region).status_code == 409
    assert client.delete(f"/api/v1/escalation-policies/{created.json()['id']}", headers=region).status_code == 204
    assert client.get("/api/v1/escalation-policies").status_code == 401


def test_contacts_are_kept_within_the_jurisdiction(client, auth):
    league = auth("league_inspector", "150100")
    body = {"division_code": "150102", "name": "新城区电梯应急救援队", "kind": "emergency_team", "categories": ["3000"],
            "min_severity": "major", "channels": [
                {"channel": "sms", "address": "https://sms.example.cn/send", "template": "{summary}"},
                {"channel": "email", "address": "rescue@example.cn"}]}
    r = client.post("/api/v1/contacts", json=body, headers=league)
    assert r.status_code == 201, r.text
    contact = r.json()
    assert [c["channel"] for c in contact["channels"]] == ["sms", "email"]
    outside = client.post("/api/v1/contacts", json={**body, "division_code": "150202"}, headers=league)
    assert outside.status_code == 403 and outside.json()["detail"][0]["loc"] == ["body", "division_code"]
    bad = client.post("/api/v1/contacts", json={**body, "channels": [{"channel": "email", "address": "not-mail"}]},
                      headers=league)
    assert bad.status_code == 422 and "e-mail address" in bad.json()["detail"][0]["msg"]
    unknown = client.post("/api/v1/contacts", json={**body, "division_code": "159999"}, headers=league)
    assert unknown.status_code == 422 and "does not exist" in unknown.json()["detail"][0]["msg"]
    assert client.post("/api/v1/contacts", json=body, headers=auth("registry_clerk", "150100")).status_code == 403

    mine = client.get("/api/v1/contacts", params={"division": "150102"}, headers=auth("banner_inspector", "150102"))
    assert [c["id"] for c in mine.json()] == [contact["id"]]
    other = auth("banner_inspector", "150202")
    assert client.get(f"/api/v1/contacts/{contact['id']}", headers=other).status_code == 404
    off = client.put(f"/api/v1/contacts/{contact['id']}/duty", json={"on_duty": False}, headers=league)
    assert off.status_code == 200 and off.json()["on_duty"] is False
    assert client.delete(f"/api/v1/contacts/{contact['id']}", headers=league).status_code == 204
    assert client.get(f"/api/v1/contacts/{contact['id']}", headers=league).status_code == 404


def test_response_record_and_share_acknowledged_within_five_minutes(client, auth, notify_url, sink, notifier):
    sites = [make_site(notify_url, "150105") for _ in range(2)]
    add_contact(notify_url, "150105", "duty", [("webhook", sink.url("/duty"), None)])
    notifier().start()
    alerts = [open_alert(notify_url, s.equipment[0], severity="critical", rule_key="event.passenger_trapped")
              for s in sites]
    sink.wait(lambda rs: len(rs) >= 2, what="both notified")
    wait_until(lambda: query(notify_url, "SELECT count(first_notified_at) FROM alert_responses "
                                         "WHERE alert_id = ANY(%s)", alerts)[0][0], lambda n: n == 2,
               what="deliveries recorded")
    banner = auth("banner_inspector", "150105")
    r = client.post(f"/api/v1/alerts/{alerts[0]}/acknowledge", json={"reason": "rescue team dispatched"},
                    headers=banner)
    assert r.status_code == 200, r.text

    record = client.get(f"/api/v1/responses/alerts/{alerts[0]}", headers=banner).json()
    assert record["acknowledged_at"] is not None and 0 <= record["seconds_to_acknowledge"] < 60
    assert 0 <= record["seconds_to_first_notification"] <= record["seconds_to_acknowledge"]
    assert record["level"] == "region" and record["escalations"][0]["to_level"] == "region"
    # At the banner only for as long as the notifier took to react.
    assert record["seconds_at_level"]["region"] > 0 and record["seconds_at_level"]["banner"] < 1
    assert client.get(f"/api/v1/responses/alerts/{alerts[0]}", headers=auth("banner_inspector", "150202")
                      ).status_code == 404

    stats = client.get("/api/v1/responses/stats", params={"rule_key": "event.passenger_trapped", "ack_within_s": 300,
                                                          "division": "150105"}, headers=banner).json()
    (row,) = stats["divisions"]
    assert (row["division_code"], row["alerts"], row["notified"], row["acknowledged"]) == ("150105", 2, 2, 1)
    assert row["share_acknowledged_within"] == 0.5 and row["reached_region"] == 2
    league = client.get("/api/v1/responses/stats", params={"group_by": "league", "division": "150100"},
                        headers=auth("league_inspector", "150100")).json()
    assert [d["division_code"] for d in league["divisions"]] == ["150100"]
    bad = client.get("/api/v1/responses/stats", params={"since": "2026-02-01T00:00:00Z",
                                                        "until": "2026-01-01T00:00:00Z"}, headers=banner)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "since"]
