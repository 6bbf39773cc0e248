"""The worker's `Engine` over decoded-as-received deliveries (no broker, no database): what each topic becomes."""

from __future__ import annotations

import orjson

from alerts.engine.step import ClearAlert, RaiseAlert
from alerts.store import EquipmentInfo
from alerts.worker import SILENCE_TICK_MS, Engine
from safewatch.contract import Event, GatewayState, Kind, build_topic, encode_event, encode_status
from safewatch.mqtt import Delivery

T0 = 1_764_000_000_000
LIFT = EquipmentInfo(1, "311015010202400001", "3000", {"rated_speed": 1.5}, "150102", "150100", "in_use", "gw-a")
OTHER = EquipmentInfo(2, "311015010202400002", "3000", {"rated_speed": 1.5, "report_interval_s": 5}, "150102",
                      "150100", "in_use", "gw-b")


def d(kind: Kind, gateway: str | None, payload: bytes) -> Delivery:
    assert gateway is not None, "the equipment of these tests report through a gateway"
    return Delivery(build_topic("150100", gateway, kind), payload, 0, 1, 0, T0 / 1000)


def telemetry(code: str, ts: int, **values: float) -> bytes:
    return orjson.dumps({"ts": ts, "readings": [{"equipment": code, "values": values}]})


def engine() -> Engine:
    e = Engine(anomaly_enabled=False)
    e.add([LIFT, OTHER])
    return e


def test_threshold_event_and_binding() -> None:
    e = engine()
    effects, evaluated = e.evaluate([
        d(Kind.TELEMETRY, "gw-a", telemetry(LIFT.code, T0, speed=1.9)),
        d(Kind.TELEMETRY, "gw-b", telemetry(LIFT.code, T0, speed=3.0)),  # not its gateway: ignored
        d(Kind.EVENT, "gw-a", encode_event(Event(LIFT.code, "passenger_trapped", T0))),
        d(Kind.TELEMETRY, "gw-a", b"{not json"),  # the ingest dead-letters it; nothing here
    ], T0)
    assert evaluated == 1
    assert sorted(x.rule_key for x in effects if isinstance(x, RaiseAlert)) == [
        "elevator.speed.high", "elevator.speed.high_high", "event.passenger_trapped"]


def test_impossible_value_is_a_sensor_fault() -> None:
    e = engine()
    effects, _ = e.evaluate([d(Kind.TELEMETRY, "gw-a", telemetry(LIFT.code, T0, speed=99.0, floor=3))], T0)
    [fault] = [x for x in effects if isinstance(x, RaiseAlert)]
    assert fault.rule_key == "sensor.speed.out_of_range" and fault.ts_ms == T0 and "outside the physical range" in \
        fault.message
    effects, _ = e.evaluate([d(Kind.TELEMETRY, "gw-a", telemetry(LIFT.code, T0 + 1000, speed=1.0))], T0)
    assert [(type(x), x.rule_key) for x in effects] == [(ClearAlert, "sensor.speed.out_of_range")]


def test_last_will_and_event_time_silence() -> None:
    e = engine()
    effects, _ = e.evaluate([d(Kind.TELEMETRY, "gw-a", telemetry(LIFT.code, T0, speed=0.0)),
                             d(Kind.TELEMETRY, "gw-b", telemetry(OTHER.code, T0, speed=0.0))], T0)
    assert effects == []
    # gw-b's last will (no time in it): offline at the shard's event time, for the equipment behind it only.
    effects, _ = e.evaluate([d(Kind.STATUS, "gw-b", encode_status(GatewayState.OFFLINE))], T0)
    assert [(x.equipment_id, x.rule_key, x.ts_ms) for x in effects] == [(2, "no_data.gateway_offline", T0)]
    # Only gw-a keeps reporting; OTHER expects a reading every 5 s, silent after 15 s — judged when the
    # shard's event time passes a 10 s boundary, and suppressed by design under its offline gateway.
    silent: list[RaiseAlert | ClearAlert] = []
    for k in range(1, 5):
        ts = T0 + k * SILENCE_TICK_MS
        effects, _ = e.evaluate([d(Kind.TELEMETRY, "gw-a", telemetry(LIFT.code, ts, speed=0.0))], ts)
        silent += effects
    assert [(x.equipment_id, x.rule_key, x.suppressed_by if isinstance(x, RaiseAlert) else "cleared")
            for x in silent] == [
        (2, "no_data.silent", "no_data.gateway_offline")]
    assert silent[0].ts_ms // SILENCE_TICK_MS * SILENCE_TICK_MS == silent[0].ts_ms


def test_a_full_window_never_blocks_the_worker_from_stopping() -> None:
    """At shutdown the subscriber closes its window: a network thread blocked on a full window returns."""
    import threading

    from safewatch.mqtt import InflightWindow

    window = InflightWindow(1, 1 << 20)
    window.put(Delivery("t", b"x", 1, 1, 0, 0.0))
    blocked = threading.Thread(target=window.put, args=(Delivery("t", b"y", 2, 1, 0, 0.0),), daemon=True)
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()  # the window is full: back-pressure
    window.close()
    blocked.join(5)
    assert not blocked.is_alive() and window.queued() == 1


def test_shard_wide_anomaly_scoring_gives_the_reference_effects_across_a_save_and_restore() -> None:
    """The Engine scores every equipment's detector at once (FleetDetector); the pure `step_instants`
    with each state's own detector is the reference. Both see the same series; half-way the Engine's
    state is saved as plain data and restored into a new Engine, as a graceful restart does."""
    import json

    import numpy as np

    from alerts.engine.anomaly import AnomalyConfig
    from alerts.engine.step import EquipmentState, new_detector, step_instants

    config = AnomalyConfig(learning_period=60, avg_window=10)
    rng = np.random.default_rng(11)
    speeds = {LIFT.id: rng.normal(1.0, 0.02, 400), OTHER.id: rng.normal(0.8, 0.02, 400)}
    speeds[LIFT.id][250:] = rng.normal(0.3, 0.2, 150).clip(0.0, 1.4)  # a change of behaviour, below every limit
    e = Engine(anomaly=config)
    e.add([LIFT, OTHER])
    reference = {i: EquipmentState(detector=new_detector(e.rules_for(i), config)) for i in (LIFT.id, OTHER.id)}
    got, want = [], []
    for k in range(400):
        if k == 200:
            saved = json.loads(json.dumps(e.plain_states()))
            e = Engine(anomaly=config)
            e.add([LIFT, OTHER])
            e.restore({int(i): s for i, s in saved.items()})
        ts = T0 + k * 1000
        batch = [d(Kind.TELEMETRY, info.gateway_id, telemetry(info.code, ts, speed=float(speeds[info.id][k])))
                 for info in (LIFT, OTHER)]
        effects, _ = e.evaluate(batch, ts)
        got += [x for x in effects if x.rule_key.endswith("anomaly")]
        for info in (LIFT, OTHER):
            reference[info.id], new = step_instants(info.id, e.table_for(info.id), reference[info.id],
                                                    [(ts, {"speed": float(speeds[info.id][k])})])
            want += [x for x in new if x.rule_key.endswith("anomaly")]
    assert got == want
    assert any(isinstance(x, RaiseAlert) and x.equipment_id == LIFT.id for x in got)
