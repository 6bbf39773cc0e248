"""Issue 21 through the real broker and database: no message stops the ingest, floods the dead letters,
is dead-lettered twice, or makes a last will outrank a newer online.

Each test fails on the code before the fix: the ingest exited on the first (psycopg.DataError, then
RecursionError, then orjson's JSONEncodeError), stored 130,000 rows for the second, showed the gateway
offline in the third, exited or retried for ever in the fourth, and grew without end in the fifth.
"""

from __future__ import annotations

import time

import orjson
import psycopg
import pytest

from ingest.worker import run as run_ingest
from safewatch.contract import MAX_JSON_DEPTH, Kind, build_topic
from safewatch.db import one_row
from safewatch.mqtt import connect_publisher
from tests.waiting import wait_until

DEAD_LETTERS_OF = "SELECT reason, detail, payload, equipment_code FROM dead_letters WHERE topic = %s ORDER BY id"
READINGS_OF = "SELECT count(*) FROM readings r JOIN equipment e ON e.id = r.equipment_id WHERE e.code = %s"
EVENTS_OF = "SELECT count(*) FROM events ev JOIN equipment e ON e.id = ev.equipment_id WHERE e.code = %s"
EVENT_DETAILS_OF = """
SELECT ev.details FROM events ev JOIN equipment e ON e.id = ev.equipment_id WHERE e.code = %s ORDER BY ev.time
"""
STATUS_OF = "SELECT state FROM gateway_status WHERE gateway_id = %s"


def _publish(settings, uid, messages, *, retain: bool = False) -> None:
    client = connect_publisher(settings.mqtt, client_id=f"poison-{uid}")
    for info in [client.publish(t, p, qos=1, retain=retain) for t, p in messages]:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def _query(pg_url: str, sql: str, *args: object) -> list[tuple]:
    with psycopg.connect(pg_url) as c:
        return c.execute(sql, args).fetchall()


def _settled(metrics) -> None:
    """Wait until nothing received is queued or unacknowledged: everything received is committed."""
    wait_until(lambda: (metrics.get_sample_value("safewatch_ingest_unacked_messages"),
                        metrics.get_sample_value("safewatch_ingest_queue_depth")), lambda v: v == (0, 0),
               what="everything received committed and acknowledged")


def _an_elevator(registry):
    eq = next(e for e in registry.equipment if e["category"] == "3000")
    gw = next(g for g in registry.gateways if g["id"] == eq["gateway_id"])
    return eq, gw


def test_poison_messages_are_handled_once_and_the_ingest_carries_on(settings, fleet, running, pg_url, uid):
    eq, gw = _an_elevator(fleet(10))
    metrics = running(run_ingest, settings)
    now = int(time.time() * 1000)
    telemetry = build_topic(gw["league_code"], gw["id"], Kind.TELEMETRY)
    event_topic = build_topic(gw["league_code"], gw["id"], Kind.EVENT)
    nul_code = b'{"ts":%d,"readings":[{"equipment":"AB\\u0000CD","values":{"speed":1}}]}' % now
    # Events whose free text jsonb cannot hold as sent: kept (a trapped passenger must be alerted), made storable.
    nul_details = orjson.dumps({"equipment": eq["code"], "ts": now, "type": "passenger_trapped",
                                "details": {"floor": "7\x00"}})
    nul_extra = orjson.dumps({"equipment": eq["code"], "ts": now + 1, "type": "passenger_trapped", "note\x00": 1})
    too_deep_details = b'{"equipment":"%s","ts":%d,"type":"passenger_trapped","details":{"a":%s}}' % (
        eq["code"].encode(), now + 2, ("[" * 300 + "]" * 300).encode())
    # An unknown field nested past msgspec's limit (it raised RecursionError): the message keeps the contract.
    too_deep_for_msgspec = (b'{"ts":%d,"readings":[{"equipment":"%s","values":{"speed":1},"x":%s}]}'
                            % (now, eq["code"].encode(), ("[" * 1000 + "]" * 1000).encode()))
    good = orjson.dumps({"ts": now + 1, "readings": [{"equipment": eq["code"], "values": {"speed": 1.0, "floor": 3}}]})
    poison = [(telemetry, nul_code), (event_topic, nul_details), (event_topic, nul_extra),
              (event_topic, too_deep_details), (telemetry, too_deep_for_msgspec)]
    _publish(settings, uid, [*poison, *poison, (telemetry, good)])  # each twice, identical bytes: a redelivery

    assert wait_until(lambda: _query(pg_url, READINGS_OF, eq["code"])[0][0], lambda n: n >= 3,
                      what="the good messages stored behind the poison") == 3
    _settled(metrics)  # the last message stored: every one before it received, and now committed
    rows = wait_until(lambda: _query(pg_url, DEAD_LETTERS_OF, telemetry) + _query(pg_url, DEAD_LETTERS_OF, event_topic),
                      lambda r: len(r) >= 1, what="the code holding U+0000 dead-lettered")
    assert [(r[0], bytes(r[2]), r[3]) for r in rows] == [("malformed_payload", nul_code, None)]  # once, no NUL code
    details = [r[0] for r in _query(pg_url, EVENT_DETAILS_OF, eq["code"])]
    assert details == [{"floor": "7\\u0000"}, {"extra": {"note\\u0000": 1}}, {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
        f"(nested deeper than {MAX_JSON_DEPTH} levels: not kept)"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}]
    wait_until(lambda: metrics.get_sample_value("safewatch_ingest_messages_rejected_total",
                                                {"reason": "malformed_payload"}), lambda n: n >= 1,
               what="counted")
    assert _query(pg_url, DEAD_LETTERS_OF, telemetry) + _query(pg_url, DEAD_LETTERS_OF, event_topic) == rows


def test_a_message_of_130000_bad_entries_makes_one_dead_letter(settings, fleet, running, pg_url, uid):
    eq, gw = _an_elevator(fleet(10))
    metrics = running(run_ingest, settings)
    now = int(time.time() * 1000)
    topic = build_topic(gw["league_code"], gw["id"], Kind.TELEMETRY)
    flood = b'{"ts":%d,"readings":[%s]}' % (now, b",".join([b"0"] * 130_000))
    assert len(flood) < settings.ingest.max_payload_bytes
    mixed = orjson.dumps({"ts": now, "readings": [{"equipment": eq["code"], "values": {"speed": 1.0}},
                                                  {"equipment": eq["code"][:-1] + "Z", "values": {"speed": 1.0}},
                                                  *[{"equipment": eq["code"], "values": {"speed": 1e9}}] * 30]})
    _publish(settings, uid, [(topic, flood), (topic, mixed)])

    wait_until(lambda: _query(pg_url, DEAD_LETTERS_OF, topic), lambda r: len(r) >= 2, what="two dead letters")
    _settled(metrics)
    rows = _query(pg_url, DEAD_LETTERS_OF, topic)
    assert len(rows) == 2
    (reason, detail, payload, _), (reason2, detail2, payload2, code2) = rows
    assert (reason, bytes(payload)) == ("malformed_payload", flood)
    assert detail.startswith("130000 problems in this message: malformed_payload ×130000") and len(detail) < 8192
    # The mixed one: the valid reading stored, the rest one dead letter with its reasons counted.
    assert (reason2, bytes(payload2), code2) == ("value_out_of_range", mixed, eq["code"])  # its first problem's
    assert "value_out_of_range ×30" in detail2 and "unknown_equipment ×1" in detail2
    assert wait_until(lambda: _query(pg_url, READINGS_OF, eq["code"])[0][0], lambda n: n >= 1,
                      what="the valid reading stored") == 1


def test_a_last_will_never_outranks_a_newer_online(settings, fleet, running, pg_url, uid):
    gw = fleet(10).gateways[0]
    metrics = running(run_ingest, settings)
    now = int(time.time() * 1000)
    status = build_topic(gw["league_code"], gw["id"], Kind.STATUS)

    def state() -> str | None:
        rows = _query(pg_url, STATUS_OF, gw["id"])
        return rows[0][0] if rows else None

    def written(messages: list[bytes]) -> None:  # acked in receive order, only once committed
        before = metrics.get_sample_value("safewatch_ingest_messages_stored_total")
        _publish(settings, uid, [(status, m) for m in messages])
        wait_until(lambda: metrics.get_sample_value("safewatch_ingest_messages_stored_total"),
                   lambda n: n >= before + len(messages), what="the statuses committed")

    # The gateway's clock lags ours by 20 s: online, its last will (no ts, stamped on arrival), online again.
    written([b'{"state":"online","ts":%d}' % (now - 20_000)])
    assert state() == "online"
    written([b'{"state":"offline"}'])
    assert state() == "offline"
    written([b'{"state":"online","ts":%d}' % (now - 19_000)])
    assert state() == "online"
    # The same online redelivered after a new last will does not undo the will; a newer one does.
    written([b'{"state":"offline"}', b'{"state":"online","ts":%d}' % (now - 19_000)])
    assert state() == "offline"
    written([b'{"state":"online","ts":%d}' % (now - 18_000)])
    assert state() == "online"


CREATE_REFUSAL = """
CREATE FUNCTION refuse_{uid}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.details ? 'poison_{uid}' THEN
        RAISE EXCEPTION 'refused for the test' USING ERRCODE = '{sqlstate}';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_{uid} BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_{uid}();
"""
DROP_REFUSAL = "DROP TRIGGER refuse_{uid} ON events; DROP FUNCTION refuse_{uid}();"


@pytest.mark.parametrize("sqlstate", ["22000", "54000"])  # data exception; program limit exceeded (an OperationalError)
def test_a_message_the_database_refuses_is_dead_lettered_whole_and_the_batch_written(
        settings, fleet, running, pg_url, uid, sqlstate):
    # A gap in the contract's checks, played by a trigger: the database refuses one message's row.
    eq, gw = _an_elevator(fleet(10))
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(CREATE_REFUSAL.format(uid=uid, sqlstate=sqlstate))
    try:
        metrics = running(run_ingest, settings)
        now = int(time.time() * 1000)
        telemetry = build_topic(gw["league_code"], gw["id"], Kind.TELEMETRY)
        event_topic = build_topic(gw["league_code"], gw["id"], Kind.EVENT)
        refused = orjson.dumps({"equipment": eq["code"], "ts": now, "type": "passenger_trapped",
                                "details": {f"poison_{uid}": 1}})
        fine = orjson.dumps({"equipment": eq["code"], "ts": now + 1, "type": "passenger_trapped"})
        good = orjson.dumps({"ts": now, "readings": [{"equipment": eq["code"], "values": {"speed": 1.0}}]})
        _publish(settings, uid, [(telemetry, good), (event_topic, refused), (event_topic, refused),
                                 (event_topic, fine)])
        rows = wait_until(lambda: _query(pg_url, DEAD_LETTERS_OF, event_topic), lambda r: len(r) >= 1,
                          what="the refused message dead-lettered")
        assert [(r[0], bytes(r[2])) for r in rows] == [("refused_by_database", refused)]
        assert wait_until(lambda: _query(pg_url, EVENTS_OF, eq["code"])[0][0], lambda n: n >= 1,
                          what="the other event stored") == 1
        assert _query(pg_url, READINGS_OF, eq["code"])[0][0] == 1
        wait_until(lambda: metrics.get_sample_value("safewatch_ingest_messages_rejected_total",
                                                    {"reason": "refused_by_database"}), lambda n: n == 1,
                   what="counted once")
    finally:
        with psycopg.connect(pg_url, autocommit=True) as c:
            c.execute(DROP_REFUSAL.format(uid=uid))


def test_unknown_codes_remembered_stay_bounded(conn):
    from ingest.registry_cache import MAX_MISSING, RegistryCache

    cache = RegistryCache()
    for start in range(0, MAX_MISSING + 30_000, 30_000):  # ever new, well-formed codes registered nowhere
        cache.refresh(conn, {f"ZZ{n:012d}" for n in range(start, start + 30_000)})
        assert len(cache._missing) <= MAX_MISSING
    assert len(cache) == 0


def test_gateway_status_order_on_the_database(conn, uid):
    """The rule of docs/mqtt-contract.md ("Status"), statement by statement, with commits out of order."""
    from ingest.batching import Batch, StatusRow
    from ingest.writer import write_batch

    gw, t = f"order-{uid}", 1_795_593_600_000

    def apply(state: str, ts_ms: int | None, heard_ms: int) -> str:
        write_batch(conn, Batch(statuses=[StatusRow(gw, state, ts_ms, heard_ms)]))
        return one_row(conn.execute(STATUS_OF, (gw,)))[0]

    assert apply("online", t - 20_000, t) == "online"  # the gateway's clock 20 s behind ours
    assert apply("offline", None, t + 1_000) == "offline"  # its last will, placed by arrival
    assert apply("online", t - 19_000, t + 2_000) == "online"  # reconnected: later than what the will ended
    # A last will received before that online but committed after it (another committer): it stays behind.
    assert apply("offline", None, t + 1_500) == "online"
    assert apply("offline", None, t + 3_000) == "offline"
    assert apply("online", t - 19_000, t + 4_000) == "offline"  # the old online redelivered: not after the will
    assert apply("offline", t - 18_500, t + 4_500) == "offline"
    assert apply("online", t - 18_000, t + 5_000) == "online"  # timed after timed: the gateway's order
    assert apply("offline", t - 18_500, t + 6_000) == "online"  # an older timed status, late: ignored
