"""Which MQTT client for the workers: receive + JSON-parse rate at QoS 1, one process each.

``python -m bench.ingest.clients [--messages 100000]``

Method: a private Mosquitto (shipped config); for each client a persistent session subscribes
and goes away, the raw publisher queues N telemetry messages for it at the broker, then the
client reconnects and the clock runs from connect until it has parsed all N (and acked them: the
broker's queue must be empty). This isolates receiving from publishing. The ceiling is the C
client ``mosquitto_sub -q 1`` doing the same.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.ingest.instances import PrivateBroker
from bench.ingest.publisher import RawPublisher, entry
from safewatch.mqtt import Subscriber
from safewatch.mqtt_socket import make_client
from safewatch.settings import MqttSettings

TOPIC = "se/v1/150100/gw-bench/telemetry"


def _preload(broker: PrivateBroker, n: int) -> None:
    pub = RawPublisher("127.0.0.1", broker.port, "preload", window=20_000)
    for start in range(0, n, 1000):
        pub.publish_many([(TOPIC.encode(), b'{"readings":[' + entry(b"311015000202400001", "3000",
                                                                      1_764_000_000_000 + i, i) + b"]}")
                          for i in range(start, min(n, start + 1000))])
    assert pub.wait_acked(60), "broker did not acknowledge the preload"
    pub.close()


def _paho_session(broker: PrivateBroker, client_id: str) -> None:
    """Create the persistent session (subscribe, disconnect) so the preload is queued for it."""
    done = threading.Event()
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    c.on_subscribe = lambda *a: done.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600
    c.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    c.loop_start()
    c.subscribe(TOPIC, qos=1)
    assert done.wait(10)
    c.disconnect()
    c.loop_stop()


def measure_paho(broker: PrivateBroker, n: int, make: Callable[..., paho.Client] = paho.Client) -> float:
    """paho-mqtt 2.x, manual ack after parsing (as the workers do after commit)."""
    got = 0
    done = threading.Event()

    def on_message(client: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        nonlocal got
        orjson.loads(msg.payload)
        client.ack(msg.mid, msg.qos)
        got += 1
        if got >= n:
            done.set()

    c = make(callback_api_version=CallbackAPIVersion.VERSION2, client_id="paho",
             protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
    c.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600
    props.ReceiveMaximum = 5000
    started = time.perf_counter()
    c.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    c.loop_start()
    assert done.wait(300), f"paho received {got} of {n}"
    elapsed = time.perf_counter() - started
    c.disconnect()
    c.loop_stop()
    return n / elapsed


def measure_subscriber(broker: PrivateBroker, n: int) -> float:
    """What the workers run: `safewatch.mqtt.Subscriber` (the buffered client decoding PUBLISH runs
    itself, the in-flight window), batches of up to 1,000 parsed, then acked together."""
    got = 0
    settings = MqttSettings(url=f"mqtt://127.0.0.1:{broker.port}")
    started = time.perf_counter()
    with Subscriber(settings, client_id="ours", topic_filters=[TOPIC], max_inflight=5000) as sub:
        while got < n:
            batch = sub.get_batch(1000, 0.05)
            for d in batch:
                orjson.loads(d.payload)
            sub.ack(batch)
            got += len(batch)
        elapsed = time.perf_counter() - started
    return n / elapsed


async def _gmqtt_rate(broker: PrivateBroker, n: int, on_message: Callable[..., Awaitable[int]],
                      done: asyncio.Event) -> float:
    """Messages per second for a gmqtt session (PUBACK when ``on_message`` returns) from connect until ``done``."""
    import gmqtt

    client = gmqtt.Client("gmqtt", clean_session=False, optimistic_acknowledgement=False,
                          session_expiry_interval=600, receive_maximum=5000)
    client.on_message = on_message
    started = time.perf_counter()
    await client.connect("127.0.0.1", broker.port, version=gmqtt.constants.MQTTv50)
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - started
    await client.disconnect()
    return n / elapsed


def measure_gmqtt(broker: PrivateBroker, n: int) -> float:
    """gmqtt, optimistic_acknowledgement=False: PUBACK is sent when the async handler returns."""
    async def main() -> float:
        got = 0
        done = asyncio.Event()

        async def on_message(_client: object, _topic: str, payload: bytes, _qos: int, _props: object) -> int:
            nonlocal got
            orjson.loads(payload)
            got += 1
            if got >= n:
                done.set()
            return 0

        return await _gmqtt_rate(broker, n, on_message, done)

    return asyncio.run(main())


def measure_gmqtt_batched(broker: PrivateBroker, n: int) -> float:
    """gmqtt with ack after a (simulated) batch commit: each handler awaits its batch's future."""
    async def main() -> float:
        got = 0
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        batch: list[bytes] = []
        committed: asyncio.Future[None] = loop.create_future()

        async def on_message(_client: object, _topic: str, payload: bytes, _qos: int, _props: object) -> int:
            nonlocal got, committed
            batch.append(payload)
            mine = committed
            if len(batch) >= 1000:  # "commit": parse the batch, release every waiting handler's PUBACK
                for p in batch:
                    orjson.loads(p)
                got += len(batch)
                batch.clear()
                committed = loop.create_future()
                mine.set_result(None)
                if got >= n:
                    done.set()
            await mine
            return 0

        return await _gmqtt_rate(broker, n, on_message, done)

    return asyncio.run(main())


def measure_aiomqtt(broker: PrivateBroker, n: int) -> float:
    """aiomqtt 2.x (paho underneath, acknowledges on receipt: no ack-after-commit)."""
    import aiomqtt

    async def main() -> float:
        got = 0
        started = time.perf_counter()
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="aiomqtt", clean_start=False,
                                  protocol=aiomqtt.ProtocolVersion.V5, max_queued_incoming_messages=0,
                                  properties=_session_props()) as client:
            async for message in client.messages:
                orjson.loads(message.payload)
                got += 1
                if got >= n:
                    break
        return n / (time.perf_counter() - started)

    return asyncio.run(main())


def _session_props() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600
    return props


def measure_mosquitto_sub(broker: PrivateBroker, n: int) -> float:
    """The C client: the broker's own ceiling for one QoS 1 subscriber on this machine."""
    started = time.perf_counter()
    subprocess.run(["mosquitto_sub", "-p", str(broker.port), "-i", "csub", "-c", "-q", "1", "-V", "5",
                    "-x", "600", "-t", TOPIC, "-C", str(n)], check=True, stdout=subprocess.DEVNULL)
    return n / (time.perf_counter() - started)


def _csub_session(broker: PrivateBroker, _client_id: str) -> None:
    subprocess.run(["mosquitto_sub", "-p", str(broker.port), "-i", "csub", "-c", "-q", "1", "-V", "5",
                    "-x", "600", "-t", TOPIC, "-E"], check=True)


CLIENTS: dict[str, tuple[Callable[[PrivateBroker, str], None], Callable[[PrivateBroker, int], float], str]] = {
    "mosquitto_sub (C)": (_csub_session, measure_mosquitto_sub, "csub"),
    "paho-mqtt 2.x manual ack": (_paho_session, measure_paho, "paho"),
    "paho, buffered reads": (_paho_session, lambda b, n: measure_paho(b, n, make_client), "paho"),
    "the workers' Subscriber (batch of 1000)": (_paho_session, measure_subscriber, "ours"),
    "gmqtt (ack when handler returns)": (_paho_session, measure_gmqtt, "gmqtt"),
    "gmqtt (ack after batch of 1000)": (_paho_session, measure_gmqtt_batched, "gmqtt"),
    "aiomqtt (auto ack)": (_paho_session, measure_aiomqtt, "aiomqtt"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    import gmqtt  # noqa: F401  (fail early: `pip install -e .[bench]`)

    print(f"machine: {platform.platform()} cpus={__import__('os').cpu_count()} python={platform.python_version()} "
          f"paho={paho.__version__ if hasattr(paho, '__version__') else '2.x'} load={__import__('os').getloadavg()}")
    print(f"{args.messages} queued QoS 1 telemetry messages (~{len(entry(b'311015000202400001', '3000', 0, 0))} "
          "bytes), received + parsed + acked by one process:")
    with PrivateBroker() as broker:
        for name, (make_session, measure, client_id) in CLIENTS.items():
            make_session(broker, client_id)
            _preload(broker, args.messages)
            rate = measure(broker, args.messages)
            print(f"  {name:40s} {rate:10,.0f} msg/s")


if __name__ == "__main__":
    main()
