"""Dead letters through the real broker and database: listed in scope, re-processed once fixed (API and CLI)."""

from __future__ import annotations

import time

import orjson
import psycopg
from click.testing import CliRunner

from ingest.worker import run as run_ingest
from safewatch.cli import main as cli
from safewatch.contract import Kind, build_topic
from safewatch.db import one_row
from safewatch.mqtt import connect_publisher
from tests.waiting import wait_until

DEAD_LETTERS_OF = "SELECT id, reason FROM dead_letters WHERE topic LIKE %s AND retry_of IS NULL ORDER BY id"
REGISTER_LIKE = """
INSERT INTO equipment (code, category, variety, unit_id, banner_code, rated, status, gateway_id)
SELECT %s, category, variety, unit_id, banner_code, rated, status, gateway_id FROM equipment WHERE code = %s
"""
COUNT_READINGS_OF = "SELECT count(*) FROM readings r JOIN equipment e ON e.id = r.equipment_id WHERE e.code = %s"


def _publish(settings, uid, messages) -> None:
    client = connect_publisher(settings.mqtt, client_id=f"dl-{uid}")
    for info in [client.publish(t, p, qos=1) for t, p in messages]:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def test_dead_letters_listed_in_scope_and_reprocessed_once_fixed(settings, fleet, running, pg_url, uid, api_as):
    registry = fleet(30)
    metrics = running(run_ingest, settings)
    eq = next(e for e in registry.equipment if e["category"] == "3000")
    gw = next(g for g in registry.gateways if g["id"] == eq["gateway_id"])
    other = next(g for g in registry.gateways if g["league_code"] != gw["league_code"])
    unknown_code = eq["code"][:-5] + "Z" + eq["code"][-4:]
    now = int(time.time() * 1000)
    topic = build_topic(gw["league_code"], gw["id"], Kind.TELEMETRY)
    _publish(settings, uid, [
        (topic, orjson.dumps({"ts": now, "readings": [{"equipment": unknown_code, "values": {"speed": 1.2,
                                                                                              "floor": 4}}]})),
        (build_topic(other["league_code"], other["id"], Kind.TELEMETRY),
         orjson.dumps({"ts": now, "readings": [{"equipment": eq["code"], "values": {"speed": 0.5}}]})),
    ])

    def dead() -> list[tuple[int, str]]:
        with psycopg.connect(pg_url) as c:
            return c.execute(DEAD_LETTERS_OF, (f"se/v1/%/t{uid}-%",)).fetchall()

    rows = wait_until(dead, lambda r: len(r) >= 2, what="two dead letters")
    by_reason = {reason: id_ for id_, reason in rows}
    # Counted by reason once committed. (The worker subscribes to every device topic of the shared test
    # broker, where other tests publish too: hence at-least counts here; exact ones are in the fault tests.)
    wait_until(lambda: [metrics.get_sample_value("safewatch_ingest_messages_rejected_total", {"reason": r})
                        for r in ("unknown_equipment", "equipment_not_bound_to_gateway")],
               lambda v: all(x >= 1 for x in v), what="rejections counted by reason")
    assert metrics.get_sample_value("safewatch_ingest_messages_stored_total") >= 2  # committed and acked
    assert metrics.get_sample_value("safewatch_ingest_batch_messages_count") >= 1
    unknown_id, unbound_id = by_reason["unknown_equipment"], by_reason["equipment_not_bound_to_gateway"]

    admin = api_as("administrator", "150000")
    listed = admin.get("/api/v1/deadletters", params={"gateway": gw["id"]}).json()["items"]
    assert [d["id"] for d in listed] == [unknown_id]
    assert listed[0]["equipment_code"] == unknown_code and unknown_code in listed[0]["payload"]
    assert "register it" in listed[0]["detail"]
    # Scope: a region inspector whose jurisdiction is another league does not see it; a banner inspector may not ask.
    elsewhere = api_as("region_inspector", other["league_code"])
    assert elsewhere.get("/api/v1/deadletters", params={"gateway": gw["id"]}).json()["items"] == []
    assert elsewhere.get(f"/api/v1/deadletters/{unknown_id}").status_code == 404
    assert api_as("banner_inspector", eq["banner_code"]).get("/api/v1/deadletters").status_code == 403

    # Still unknown: re-processing fails again, with the reason, and the original stays pending-marked.
    again = admin.post("/api/v1/deadletters/reprocess", json={"ids": [unknown_id]}).json()
    assert again["outcomes"] == [{"id": unknown_id, "result": "failed_again", "readings_stored": 0,
                                  "reasons": ["unknown_equipment"]}]
    # Re-processed ones are not re-run; the new dead letter points back to it.
    retry = admin.get("/api/v1/deadletters", params={"gateway": gw["id"], "pending": True}).json()["items"]
    assert [d["retry_of"] for d in retry] == [unknown_id]

    # Register the equipment, re-run the retry: its two readings are stored.
    with psycopg.connect(pg_url) as c:
        c.execute(REGISTER_LIKE, (unknown_code, eq["code"]))
    done = admin.post("/api/v1/deadletters/reprocess", json={"ids": [retry[0]["id"], unknown_id]}).json()
    assert done["outcomes"] == [{"id": retry[0]["id"], "result": "stored", "readings_stored": 2, "reasons": []}]
    assert done["skipped"] == [unknown_id]
    with psycopg.connect(pg_url) as c:
        assert one_row(c.execute(COUNT_READINGS_OF, (unknown_code,)))[0] == 2

    # The CLI: fix the binding the other way round, then re-process the second dead letter by id.
    with psycopg.connect(pg_url) as c:
        c.execute("UPDATE equipment SET gateway_id = %s WHERE code = %s", (other["id"], eq["code"]))
    env = {"SAFEWATCH_DB__URL": pg_url, "SAFEWATCH_LOG_JSON": "true"}
    result = CliRunner().invoke(cli, ["deadletters", "reprocess", str(unbound_id)], env=env)
    assert result.exit_code == 0, result.output
    assert f"{unbound_id}\tstored\t1 readings" in result.output
    listed = CliRunner().invoke(cli, ["deadletters", "list", "--all", "--gateway", other["id"]], env=env)
    assert listed.exit_code == 0 and f"{unbound_id}\t" in listed.output and "[stored]" in listed.output
    with psycopg.connect(pg_url) as c:
        assert one_row(c.execute(COUNT_READINGS_OF, (eq["code"],)))[0] == 1
