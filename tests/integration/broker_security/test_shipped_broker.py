"""The shipped broker configuration, attacked: deploy/mosquitto/mosquitto.conf as docker-compose runs it.

A private Mosquitto (bench/ingest/instances.py `PrivateBroker(secured=True)`) runs the whole shipped file with
only its ports and paths moved, reading accounts and ACLs written by the same code as `safewatch gateways
broker-files` and docker-compose's broker-init, and a trial certificate. Gateways dial the TLS listener,
services the internal one. Every refusal is observed on the wire (CONNACK, PUBACK, SUBACK reason codes), and
"nothing arrived" is proven with a marker: once a later message or acknowledgement is in, an earlier delivery
would have been too (one broker, one connection, in order).
"""

from __future__ import annotations

import itertools
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from bench.ingest.instances import MOSQUITTO, PrivateBroker
from safewatch.registry.broker import BrokerAccount, mosquitto_hash
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="needs the mosquitto binary")

PASSWORDS = {"gw-sec-a": "gateway-a-password-0123456789", "gw-sec-b": "gateway-b-password-0123456789",
             "ingest": "ingest-password-0123456789", "alerts": "alerts-password-0123456789",
             "notifier": "notifier-password-0123456789", "operator": "operator-password-0123456789"}
LEAGUE = "150100"
_serial = itertools.count()


def accounts(passwords: dict[str, str]) -> list[BrokerAccount]:
    return [BrokerAccount(name, mosquitto_hash(pw), LEAGUE if name.startswith("gw-") else None)
            for name, pw in passwords.items()]


@pytest.fixture(scope="module")
def broker() -> Iterator[PrivateBroker]:
    b = PrivateBroker(secured=True)
    b.write_accounts(accounts(PASSWORDS), hostnames=("localhost", "127.0.0.1"))
    with b:
        yield b


class Client:
    """A paho MQTT v5 client whose CONNACKs, acks, messages and disconnects land in queues (tests wait on them)."""

    def __init__(self, broker: PrivateBroker, username: str | None, password: str | None, *, gateway: bool,
                 client_id: str | None = None, will: tuple[str, bytes] | None = None,
                 port: int | None = None) -> None:
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.acks: queue.Queue[tuple[int, ReasonCode]] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.disconnects: queue.Queue[ReasonCode] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=client_id or f"{username or 'anon'}-{next(_serial)}")
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=False)
        if gateway and port is None:
            self.client.tls_set(ca_certs=str(broker.files / "tls" / "ca.crt"))
        self.client.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.client.on_publish = lambda c, u, mid, rc, p: self.acks.put((mid, rc))
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put(rcs)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnects.put(rc)
        self.client.reconnect_delay_set(1, 1)
        host = "localhost" if gateway else "127.0.0.1"
        target = port if port is not None else (broker.tls_port if gateway else broker.port)
        self.client.connect(host, target, keepalive=30, clean_start=True, properties=Properties(1))
        self.client.loop_start()

    def connected(self) -> ReasonCode:
        return self.connack.get(timeout=10)

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=1)
        mid, code = self.acks.get(timeout=10)
        assert mid == info.mid
        return code

    def subscribe(self, topic: str) -> ReasonCode:
        self.client.subscribe(topic, qos=1)
        return self.subacks.get(timeout=10)[0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def connect(clients: list[Client], broker: PrivateBroker, username: str | None, password: str | None = None, *,
            gateway: bool, **kwargs: Any) -> Client:
    c = Client(broker, username, password if password is not None else PASSWORDS.get(username or "", ""),
               gateway=gateway, **kwargs)
    clients.append(c)
    return c


def accepted(c: Client) -> Client:
    code = c.connected()
    assert not code.is_failure, code
    return c


def topic(gateway_id: str, kind: str = "telemetry") -> str:
    return f"se/v1/{LEAGUE}/{gateway_id}/{kind}"


def test_anonymous_clients_are_refused_on_both_listeners(broker: PrivateBroker, clients: list[Client]) -> None:
    for gateway in (False, True):
        code = connect(clients, broker, None, gateway=gateway).connected()
        assert code.is_failure and code.getName() == "Not authorized", (gateway, code)


def test_the_health_listener_sees_the_uptime_and_nothing_else(broker: PrivateBroker, clients: list[Client]) -> None:
    health = accepted(connect(clients, broker, None, gateway=False, port=broker.health_port))
    assert not health.subscribe("$SYS/broker/uptime").is_failure
    assert health.messages.get(timeout=20)[0] == "$SYS/broker/uptime"
    health.subscribe("se/v1/#")  # Mosquitto 2.0.11 grants it; the ACL is applied to each message instead
    ingest = accepted(connect(clients, broker, "ingest", gateway=False))
    assert not ingest.subscribe("se/v1/+/+/+").is_failure
    assert health.publish(topic("gw-sec-a"), b"forged").is_failure
    a = accepted(connect(clients, broker, "gw-sec-a", gateway=True))
    assert not a.publish(topic("gw-sec-a"), b"a-secret").is_failure
    assert ingest.messages.get(timeout=10) == (topic("gw-sec-a"), b"a-secret")  # nothing forged before it
    assert health.publish(topic("gw-sec-a"), b"round-trip").is_failure  # after anything forwarded to health
    assert not [m for m in list(health.messages.queue) if m[0].startswith("se/")]


def test_wrong_passwords_and_wrong_listeners_are_refused(broker: PrivateBroker, clients: list[Client]) -> None:
    attempts = [("gw-sec-a", "not-its-password", True), ("nobody", "x" * 20, True),
                ("ingest", "not-its-password", False),
                # The right password on the other kind's listener: accounts are per listener.
                ("gw-sec-a", PASSWORDS["gw-sec-a"], False), ("ingest", PASSWORDS["ingest"], True)]
    for username, password, gateway in attempts:
        code = connect(clients, broker, username, password, gateway=gateway).connected()
        assert code.is_failure, (username, gateway, code)


def test_a_gateway_publishing_under_another_gateways_topic_is_dropped(broker: PrivateBroker,
                                                                     clients: list[Client]) -> None:
    ingest = accepted(connect(clients, broker, "ingest", gateway=False))
    assert not ingest.subscribe("se/v1/+/+/+").is_failure
    a = accepted(connect(clients, broker, "gw-sec-a", gateway=True))
    for forged in (topic("gw-sec-b"), topic("gw-sec-b", "status"), "se/v1/150200/gw-sec-a/telemetry"):
        code = a.publish(forged, b"forged")
        assert code.is_failure and code.getName() == "Not authorized", (forged, code)
    assert not a.publish(topic("gw-sec-a"), b"marker").is_failure
    assert ingest.messages.get(timeout=10) == (topic("gw-sec-a"), b"marker")  # and nothing forged before it
    assert ingest.messages.empty()


def test_another_gateways_client_id_cannot_knock_it_off(broker: PrivateBroker, clients: list[Client]) -> None:
    ingest = accepted(connect(clients, broker, "ingest", gateway=False))
    assert not ingest.subscribe("se/v1/+/+/+").is_failure
    b = accepted(connect(clients, broker, "gw-sec-b", gateway=True, client_id="gw-sec-b",
                         will=(topic("gw-sec-b", "status"), b'{"state":"offline"}')))
    # A logs in with its own credentials under B's client id: the broker makes its client id its username.
    a = accepted(connect(clients, broker, "gw-sec-a", gateway=True, client_id="gw-sec-b"))
    assert not a.publish(topic("gw-sec-a"), b"a-connected").is_failure
    assert ingest.messages.get(timeout=10) == (topic("gw-sec-a"), b"a-connected")
    # B's first connection is still the one it has: never dropped, so no last will "offline" either.
    assert not b.publish(topic("gw-sec-b"), b"b-still-here").is_failure
    assert ingest.messages.get(timeout=10) == (topic("gw-sec-b"), b"b-still-here")
    assert b.disconnects.empty() and ingest.messages.empty()


def test_a_gateway_subscribing_to_everything_gets_nothing(broker: PrivateBroker, clients: list[Client]) -> None:
    ingest = accepted(connect(clients, broker, "ingest", gateway=False))
    assert not ingest.subscribe("se/v1/+/+/+").is_failure
    a = accepted(connect(clients, broker, "gw-sec-a", gateway=True))
    a.subscribe("se/v1/#")  # refused (0x87) by the shipped ACL; either way nothing may arrive
    b = accepted(connect(clients, broker, "gw-sec-b", gateway=True))
    assert not b.publish(topic("gw-sec-b"), b"b-secret").is_failure
    assert ingest.messages.get(timeout=10) == (topic("gw-sec-b"), b"b-secret")
    # The broker forwarded B's message to every allowed subscriber before ingest had it; A's acknowledgement
    # comes after anything forwarded to A on the same connection.
    assert not a.publish(topic("gw-sec-a"), b"a-marker").is_failure
    assert a.messages.empty()


@pytest.mark.parametrize(("account", "gateway"), [("ingest", False), ("alerts", False), ("operator", False),
                                                  ("gw-sec-a", True)])
def test_only_the_notifier_publishes_alerts(broker: PrivateBroker, clients: list[Client], account: str,
                                            gateway: bool) -> None:
    operator = accepted(connect(clients, broker, "operator", gateway=False))
    assert not operator.subscribe("se/v1/alerts/#").is_failure
    other = accepted(connect(clients, broker, account, gateway=gateway))
    code = other.publish("se/v1/alerts/150100", b'{"forged": true}')
    assert code.is_failure and code.getName() == "Not authorized", code
    if not gateway:  # services subscribe only: no device topic either
        assert other.publish(topic("gw-sec-a"), b"forged").is_failure
    notifier = accepted(connect(clients, broker, "notifier", gateway=False))
    assert not notifier.publish("se/v1/alerts/150100", b"real").is_failure
    assert operator.messages.get(timeout=10) == ("se/v1/alerts/150100", b"real")
    assert operator.messages.empty()


def test_rotation_applies_on_sighup_without_dropping_connected_clients(clients: list[Client]) -> None:
    # A broker of its own: the rotation must not leak into the module's other tests.
    broker = PrivateBroker(secured=True)
    broker.write_accounts(accounts(PASSWORDS))
    with broker:
        ingest = accepted(connect(clients, broker, "ingest", gateway=False))
        assert not ingest.subscribe("se/v1/+/+/+").is_failure
        b = accepted(connect(clients, broker, "gw-sec-b", gateway=True))
        old = PASSWORDS["gw-sec-a"]
        new = "gateway-a-rotated-password-987654"
        broker.write_accounts(accounts({**PASSWORDS, "gw-sec-a": new}))
        broker.reload()

        def attempt(password: str) -> bool:
            c = Client(broker, "gw-sec-a", password, gateway=True)
            try:
                return not c.connected().is_failure
            finally:
                c.close()

        wait_until(lambda: attempt(new), bool, timeout=20, what="the rotated password accepted after SIGHUP")
        assert not attempt(old)
        # Those whose credentials did not change kept their connections through the reload.
        assert not b.publish(topic("gw-sec-b"), b"after-reload").is_failure
        assert ingest.messages.get(timeout=10) == (topic("gw-sec-b"), b"after-reload")
        assert b.disconnects.empty() and ingest.disconnects.empty()


def test_a_gateways_last_will_still_reaches_the_services(broker: PrivateBroker, clients: list[Client]) -> None:
    # Locked down must not mean deaf: the retained offline status is how a dead gateway is known at once.
    # (Upstream Mosquitto 2.0.11–2.0.12 dropped last wills under per_listener_settings, fixed in 2.0.13.)
    ingest = accepted(connect(clients, broker, "ingest", gateway=False))
    assert not ingest.subscribe("se/v1/+/+/+").is_failure
    will = (topic("gw-sec-b", "status"), b'{"state":"offline"}')
    b = accepted(connect(clients, broker, "gw-sec-b", gateway=True, will=will))
    b.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))  # "with will message"
    assert ingest.messages.get(timeout=10) == will
