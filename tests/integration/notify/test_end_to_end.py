"""From the wire to the receivers: a trapped passenger published over MQTT becomes, through the real
alert worker and the notifier, a critical notification at the banner, the league and the region."""

from __future__ import annotations

import time

from alerts.worker import run as run_alerts
from safewatch.contract import Event, Kind, build_topic, encode_event
from safewatch.mqtt import connect_publisher
from tests.integration.notify.conftest import add_contact, make_site, query, set_policy


def test_trapped_passenger_reaches_all_three_levels(notify_url, nsettings, sink, notifier, running, uid):
    set_policy(notify_url, "critical", open_levels=["banner", "league", "region"], max_level="region",
               banner_ack_s=300, league_ack_s=300)
    site = make_site(notify_url, "150921")
    eq = site.equipment[0]
    for division, path in (("150921", "/banner"), ("150900", "/league"), ("150000", "/region")):
        add_contact(notify_url, division, f"duty {division}", [("webhook", sink.url(path), None)],
                    kind="emergency_team", categories=["3000"])
    running(run_alerts, nsettings)
    notifier().start()
    publisher = connect_publisher(nsettings.mqtt, client_id=f"e2e-{uid}")
    try:
        published = time.time()
        info = publisher.publish(build_topic(eq.league_code, site.gateway_id, Kind.EVENT),
                                 encode_event(Event(eq.code, "passenger_trapped", int(published * 1000))), qos=1)
        info.wait_for_publish(10)
        got = sink.wait(lambda rs: {r.path for r in rs} >= {"/banner", "/league", "/region"}, timeout=20,
                        what="all three levels")
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    alert = got[0].json()["alerts"][0]
    assert alert["labels"]["alertname"] == "event.passenger_trapped" and alert["labels"]["severity"] == "critical"
    assert alert["labels"]["equipment_code"] == eq.code
    assert max(r.at for r in got) - published < 5
    (level,) = query(notify_url, "SELECT a.level FROM alerts a WHERE a.equipment_id = %s", eq.id)[0]
    assert level == "region"
