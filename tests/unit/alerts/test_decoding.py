"""An alert worker's batch decoded once (alerts.decoding): what it keeps and what it names."""

from __future__ import annotations

import orjson

from alerts.decoding import decode_batch
from safewatch.contract import Event, GatewayState, Kind, TelemetryMessage, build_topic, encode_event, encode_status
from safewatch.mqtt import Delivery

T0 = 1_764_000_000_000
LIFT, OTHER, THIRD = "311015010202400001", "311015010202400002", "311015010202400003"


def d(topic: str, payload: bytes) -> Delivery:
    return Delivery(topic, payload, 0, 1, 0, T0 / 1000)


def test_a_batch_is_decoded_once_and_names_what_must_be_looked_up() -> None:
    tele = build_topic("150100", "gw-a", Kind.TELEMETRY)
    batch = decode_batch([
        d(tele, orjson.dumps({"ts": T0, "readings": [{"equipment": LIFT, "values": {"speed": 1.0}},
                                                      {"equipment": OTHER, "values": {"speed": 99.0}}]})),
        d(build_topic("150100", "gw-b", Kind.EVENT), encode_event(Event(THIRD, "passenger_trapped", T0))),
        d(build_topic("150100", "gw-c", Kind.STATUS), encode_status(GatewayState.OFFLINE)),
        d(tele, b"{not json"),  # dead-lettered by the ingest: left out here
        d("se/v1/not-a-league/gw-a/telemetry", b"{}"),
    ], T0)
    kinds = [type(msg) for _, _, msg in batch.items]
    assert kinds[:2] == [TelemetryMessage, Event] and len(kinds) == 3
    telemetry = batch.items[0][2]
    assert isinstance(telemetry, TelemetryMessage)
    assert [e.equipment for e in telemetry.entries] == [LIFT]
    assert [r.equipment for r in telemetry.rejected] == [OTHER]  # out of range: a sensor fault to raise
    assert batch.equipment_codes() == {LIFT, OTHER, THIRD}
    assert batch.status_gateways() == {"gw-c"}
