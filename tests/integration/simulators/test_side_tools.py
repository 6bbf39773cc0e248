"""A side tool beside a running fleet, and a fleet whose connections are taken or dropped, on the real broker.

The fleet is `safewatch simulate` (what the demo runs); the side tool is `safewatch simulate --fault …`
on the same gateways. Before issue 21 the side tool connected with the fleet's client ids: the broker
dropped the fleet's connections (publishing their last will, offline), and the fleet never reconnected,
nor after a broker restart.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bench.ingest.instances import MOSQUITTO, PrivateBroker
from safewatch.settings import Settings
from simulators.fleet import demo_fleet
from tests.waiting import wait_until

FLEET = ["--demo", "40", "--gateways", "2"]  # 40 generated equipment, one gateway per league: sim-<league>-0001
GATEWAYS = sorted({e.gateway_id for e in demo_fleet(40, gateways=2)})
A_BOILER = next(e.code for e in demo_fleet(40, gateways=2) if e.category == "1000")


@dataclass
class Seen:
    """What a subscriber to every gateway's status and telemetry saw, in arrival order."""

    messages: list[tuple[str, str, bytes, bool]] = field(default_factory=list)  # gateway, kind, payload, retained
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, topic: str, payload: bytes, retained: bool) -> None:
        _, _, _league, gateway, kind = topic.split("/")
        with self.lock:
            self.messages.append((gateway, kind, payload, retained))

    def mark(self) -> int:
        with self.lock:
            return len(self.messages)

    def since(self, mark: int, kind: str) -> list[tuple[str, bytes]]:
        with self.lock:
            return [(g, p) for g, k, p, r in self.messages[mark:] if k == kind and not r and g in GATEWAYS]

    def onlines_since(self, mark: int) -> dict[str, int]:
        """gateway → the latest ``ts`` of an ``online`` received after ``mark``, retained ones included (a
        subscriber that reconnects after the gateway said it gets it retained)."""
        with self.lock:
            docs = [(g, orjson.loads(p)) for g, k, p, _ in self.messages[mark:] if k == "status" and g in GATEWAYS]
        return {g: doc.get("ts") or 0 for g, doc in docs if doc["state"] == "online"}

    def live_statuses(self, mark: int = 0) -> list[tuple[str, str]]:
        """(gateway, state) of every status published while we listened (not the retained ones at subscribe)."""
        return [(g, orjson.loads(p)["state"]) for g, p in self.since(mark, "status")]


@contextmanager
def watching(host: str, port: int) -> Iterator[Seen]:
    """A subscriber to every gateway's status and telemetry; it reconnects and subscribes again by itself."""
    got = Seen()
    subscribed: queue.Queue[bool] = queue.Queue()
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: got.add(m.topic, m.payload, bool(m.retain))
    client.on_subscribe = lambda *a: subscribed.put(True)
    client.on_connect = lambda c, *a: c.subscribe([("se/v1/+/+/status", 1), ("se/v1/+/+/telemetry", 1)])
    client.reconnect_delay_set(min_delay=1, max_delay=2)
    client.connect(host, port)
    client.loop_start()
    subscribed.get(timeout=10)
    try:
        yield got
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def seen(settings: Settings) -> Iterator[Seen]:
    with watching(settings.mqtt.host, settings.mqtt.port) as got:
        yield got


class Simulate:
    """A `safewatch simulate` process; its stderr goes to a file, shown when an assertion fails."""

    def __init__(self, mqtt_url: str, log: Path, *args: str) -> None:
        env = {**os.environ, "SAFEWATCH_MQTT__URL": mqtt_url, "SAFEWATCH_LOG_JSON": "true", "PYTHONUNBUFFERED": "1"}
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "safewatch.cli", "simulate", *FLEET, *args], env=env,
                                         stdout=subprocess.DEVNULL, stderr=err)

    def text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def publishing(seen: Seen, mark: int, what: str) -> None:
    """Every gateway of the fleet publishes telemetry after ``mark``."""
    wait_until(lambda: {g for g, _ in seen.since(mark, "telemetry")}, lambda got: got == set(GATEWAYS),
               timeout=60, what=what)


def test_simulate_with_a_fault_beside_a_running_fleet_knocks_no_gateway_offline(settings, seen, tmp_path):
    fleet = Simulate(settings.mqtt.url, tmp_path / "fleet.log", "--interval", "0.5")
    try:
        publishing(seen, 0, "the fleet publishing from every gateway")
        assert set(seen.live_statuses()) == {(g, "online") for g in GATEWAYS}, fleet.text()
        side = Simulate(settings.mqtt.url, tmp_path / "side.log", "--interval", "1", "--start", "-20s",
                        "--duration", "15", "--speed", "0", "--fault", f"{A_BOILER}:fouling:0:10")
        assert side.proc.wait(timeout=120) == 0, side.text()
        after = seen.mark()
        publishing(seen, after, "the fleet still publishing from every gateway after the side tool ran")
        assert fleet.proc.poll() is None, fleet.text()
        # The fleet's online at its start, and not one status since: no offline, no side tool's online.
        assert sorted(seen.live_statuses()) == [(g, "online") for g in GATEWAYS], fleet.text()
        assert "as a side tool" in side.text()
    finally:
        assert fleet.stop() == 0, fleet.text()


def test_a_fleet_whose_connection_is_taken_over_reconnects_says_online_and_keeps_publishing(settings, seen,
                                                                                           tmp_path):
    fleet = Simulate(settings.mqtt.url, tmp_path / "fleet.log", "--interval", "0.5")
    try:
        publishing(seen, 0, "the fleet publishing from every gateway")
        victim = GATEWAYS[0]
        before = seen.mark()
        # Another client connects with the gateway's own client id: the broker drops the fleet's connection
        # and publishes its last will.
        # (Its network loop is driven here, not in a thread that would reconnect it when taken over in turn.)
        rogue = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{victim}",
                            protocol=paho.MQTTv5 if settings.mqtt.protocol5 else paho.MQTTv311)
        connected = threading.Event()
        rogue.on_connect = lambda *a: connected.set()
        rogue.connect(settings.mqtt.host, settings.mqtt.port)
        try:
            def rogue_connected() -> bool:
                rogue.loop(0.05)
                return connected.is_set()

            wait_until(rogue_connected, bool, timeout=10, what="the rogue connected")
            wait_until(lambda: seen.live_statuses(before), lambda s: (victim, "offline") in s, timeout=30,
                       what="the taken-over gateway's last will")
        finally:
            rogue.disconnect()
        # The fleet comes back by itself: online again after the will, and publishing from every gateway.
        wait_until(lambda: seen.live_statuses(before), lambda s: s[-1:] == [(victim, "online")] and
                   (victim, "offline") in s, timeout=60, what="the gateway online again after its will")
        publishing(seen, seen.mark(), "the fleet publishing from every gateway after the takeover")
        assert fleet.proc.poll() is None, fleet.text()
        assert "gateway connection restored" in fleet.text()
    finally:
        assert fleet.stop() == 0, fleet.text()


@pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="Mosquitto is not installed: no broker of our own to kill")
def test_a_fleet_outlives_a_broker_crash_and_says_online_again_once_it_is_back(tmp_path):
    with PrivateBroker(shipped=True) as broker, watching("127.0.0.1", broker.port) as seen:
        fleet = Simulate(broker.url, tmp_path / "fleet.log", "--interval", "0.5")
        try:
            publishing(seen, 0, "the fleet publishing from every gateway")
            assert broker.proc is not None
            first = seen.onlines_since(0)  # each gateway's online when the fleet started
            assert set(first) == set(GATEWAYS)
            after = seen.mark()
            broker.proc.kill()  # kill -9: every connection drops at once, no will is published
            broker.proc.wait(timeout=30)
            broker.start()  # the same port, a few moments later
            wait_until(lambda: seen.onlines_since(after), lambda got: all(got.get(g, 0) > first[g] for g in GATEWAYS),
                       timeout=90, what="every gateway saying online again (a newer ts) after the broker came back")
            publishing(seen, after, "the fleet publishing from every gateway after the broker came back")
            assert fleet.proc.poll() is None, fleet.text()
        finally:
            assert fleet.stop() == 0, fleet.text()
