"""Publish rate of the simulator: 100,000 equipment behind 2,000 gateways, QoS 1 with every ack awaited.

    python -m bench.simulate [--equipment 100000] [--gateways 2000] [--ticks 6] [--interval 10]

Starts a PRIVATE Mosquitto on a free port (the machine's shared broker is left alone), generates the
fleet from the demo registry generator, connects one MQTT connection per gateway (all multiplexed in
this one thread), then runs ``--ticks`` ticks of the simulated clock back to back, as fast as the
models, the encoder and the broker's acks allow. Prints the machine, then per phase the wall time,
messages/s and readings/s, and the ratio to what the issue asks (every equipment once per
``--interval`` seconds: 100,000 at 0.1 Hz is 10,000 equipment updates and 200 messages a second).
No subscriber is attached: this measures the publishing side only.

``--compare-threads`` also publishes the same ticks the naive way, one paho client with its own
network thread (``loop_start``) per gateway, so the two designs are compared in one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path

from safewatch.demo import free_port
from safewatch.settings import MqttSettings, Settings
from simulators.fleet import Fleet, demo_fleet
from simulators.simulation import Simulation

START_MS = int(time.time() * 1000) - 3_600_000  # an hour back: the simulated clock may run ahead of nothing


def start_broker(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_connections -1\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"private mosquitto did not listen on {port}") from None
            time.sleep(0.05)


def machine() -> str:
    mosq = subprocess.run([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-h"], capture_output=True,
                          text=True).stdout.splitlines()[:1]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return (f"machine: {platform.platform()}; {os.cpu_count()} CPUs ({cpu}); Python {platform.python_version()}; "
            f"paho-mqtt {version('paho-mqtt')}; orjson {version('orjson')}; {mosq[0] if mosq else 'mosquitto ?'}; "
            f"load average {os.getloadavg()[0]:.2f} at start (the CPUs are shared)")


def threaded(settings: Settings, fleet_spec: list, ticks: int, interval: float, required_updates: float) -> None:
    """The same ticks published through one paho client and network thread per gateway."""
    from safewatch.mqtt import connect_publisher

    sim = Simulation(fleet_spec, seed=1)
    t = time.perf_counter()
    clients = {}
    for gw_id, gw in sim.gateways.items():
        clients[gw_id] = connect_publisher(settings.mqtt, client_id=f"thr-{gw_id}", will=gw.will())
        if len(clients) % 250 == 0:
            print(f"  thread per gateway: {len(clients)} clients started after {time.perf_counter() - t:.1f} s",
                  flush=True)
    pause = threading.Event()
    deadline = time.monotonic() + 300
    while not all(c.is_connected() for c in clients.values()):  # CONNACKs arrive on the clients' threads
        if time.monotonic() > deadline:
            connected = sum(1 for c in clients.values() if c.is_connected())
            print(f"thread per gateway: only {connected} of {len(clients)} connected after "
                  f"{time.perf_counter() - t:.0f} s; not measuring its publish rate")
            for client in clients.values():
                client.loop_stop()
            return
        pause.wait(0.05)
    print(f"thread per gateway: {len(clients)} clients and threads connected in {time.perf_counter() - t:.2f} s",
          flush=True)
    infos = []
    t = time.perf_counter()
    for i in range(1, ticks + 1):
        for o in sim.tick(START_MS + int(i * interval * 1000), interval):
            infos.append(clients[o.gateway_id].publish(o.topic, o.payload, qos=1))
    deadline = time.monotonic() + 120
    for info in infos:
        if time.monotonic() < deadline:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except RuntimeError:
                pass  # a client that lost its connection: counted below as unacknowledged
    wall = time.perf_counter() - t
    unacked = sum(1 for info in infos if not info.is_published())
    print(f"  {ticks} ticks in {wall:.2f} s, {unacked} of {len(infos)} unacknowledged after waiting up to 120 s")
    updates = ticks * len(fleet_spec)
    print(f"  {len(infos) / wall:,.0f} messages/s, {sim.counters.readings / wall:,.0f} readings/s, "
          f"{updates / wall:,.0f} equipment updates/s ({updates / wall / required_updates:.1f}x the requirement)")
    for client in clients.values():
        client.disconnect()
        client.loop_stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--equipment", type=int, default=100_000)
    parser.add_argument("--gateways", type=int, default=2_000)
    parser.add_argument("--ticks", type=int, default=6)
    parser.add_argument("--interval", type=float, default=10.0, help="simulated seconds between readings")
    parser.add_argument("--compare-threads", action="store_true",
                        help="also measure one paho network thread per gateway")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 8 * args.gateways + 1000  # per gateway and design: its socket, paho's socket pair, the broker's end
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    print(machine())

    t = time.perf_counter()
    fleet_spec = demo_fleet(args.equipment, gateways=args.gateways, seed=1, gateway_prefix="bench")
    gateways = len({e.gateway_id for e in fleet_spec})
    print(f"fleet: {len(fleet_spec)} equipment behind {gateways} gateways, generated in "
          f"{time.perf_counter() - t:.1f} s")
    required_updates = len(fleet_spec) / args.interval
    required_messages = gateways / args.interval

    # 1. The simulation alone (models + JSON encoding), no broker: where the CPU goes.
    sim = Simulation(fleet_spec, seed=1)
    sim.connect(START_MS)
    t = time.perf_counter()
    for i in range(1, args.ticks + 1):
        sim.tick(START_MS + int(i * args.interval * 1000), args.interval)
    pure_s = time.perf_counter() - t
    c = sim.counters
    print(f"simulation only: {args.ticks} ticks in {pure_s:.2f} s: {args.ticks * len(fleet_spec) / pure_s:,.0f} "
          f"equipment updates/s, {c.readings / pure_s:,.0f} readings/s, {c.messages / pure_s:,.0f} messages/s")
    del sim

    with tempfile.TemporaryDirectory(prefix="sw-bench-sim-") as tmp:
        proc, port = start_broker(Path(tmp))
        try:
            settings = Settings(mqtt=MqttSettings(url=f"mqtt://127.0.0.1:{port}", keepalive_s=60))
            fleet = Fleet(settings, fleet_spec, seed=1, client_prefix="bench")
            t = time.perf_counter()
            fleet.connect(START_MS)
            left = fleet.flush(120)
            print(f"connect: {gateways} MQTT connections with last will + retained online status in "
                  f"{time.perf_counter() - t:.2f} s ({left} unacked)")
            published0, readings0 = fleet.mux.published, fleet.counters.readings
            t = time.perf_counter()
            for i in range(1, args.ticks + 1):
                fleet.tick(START_MS + int(i * args.interval * 1000), args.interval)
            left = fleet.flush(300)
            wall = time.perf_counter() - t
            messages = fleet.mux.published - published0
            readings = fleet.counters.readings - readings0
            updates = args.ticks * len(fleet_spec)
            print(f"published over MQTT (QoS 1, all acks awaited, {left} unacked): {args.ticks} ticks in {wall:.2f} s")
            print(f"  {messages / wall:,.0f} messages/s  ({messages} messages, "
                  f"{messages / max(1, args.ticks * gateways):.2f} per gateway per tick)")
            print(f"  {readings / wall:,.0f} readings/s  ({readings} readings)")
            print(f"  {updates / wall:,.0f} equipment updates/s")
            print(f"  ratio to the requirement ({len(fleet_spec)} equipment every {args.interval:g} s = "
                  f"{required_updates:,.0f} updates/s and {required_messages:,.0f} messages/s): "
                  f"{updates / wall / required_updates:.1f}x  ->  one process keeps up at "
                  f"{updates / wall / required_updates:.1f}x real time")
            fleet.close()
            del fleet  # its clients' socket pairs are closed with them
            if args.compare_threads:
                threaded(settings, fleet_spec, args.ticks, args.interval, required_updates)
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
