"""kill -9 of the alert worker at random moments: its alert transitions against a run that never crashed.

``python -m bench.alerts.crash [--trials 200] [--seed 1] [--checkpoint-s 0.3] [--max-delay-s 1.5]``

A private Mosquitto (the shipped configuration) and a database of its own on the shared PostgreSQL.
A small fleet (two gateways, a boiler and two lifts each, their anomaly detectors restored past
learning as a long-running worker's are) gets a deterministic counted stream: threshold breaches with
and without on-delay, a falling drum level (rate of change), silences (no data), latched and plain
events, a gateway's last will and its return, spikes the anomaly detectors score 1; event time runs a
second a message, faster than the wall clock. Each trial publishes the next part of the stream (the
broker keeps it for the worker's persistent session while it is down), starts `safewatch alerts` if it
is not running, waits for its subscription, then kills it with SIGKILL (one trial in ten SIGTERM)
after a random delay. At the end the worker runs until its checkpoint covers the last message.

The reference is the pure engine in-process over the same ordered stream, message by message, its
effects written by the same `write_effects` into a second database. Per (equipment, rule), the engine's
transitions (from state, to state, event time) must be the same, in order: mismatches must be 0.
The test suite runs a short version (tests/system/test_alert_crashes.py).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from alerts.decoding import decode_batch
from alerts.store import load_equipment, write_effects
from alerts.worker import Engine
from bench.alerts.engine import trained_states
from bench.ingest.instances import free_port
from bench.machine import brief
from safewatch.contract import Event, GatewayState, Kind, build_topic, encode_event, encode_status
from safewatch.db import with_database
from safewatch.mqtt import Delivery, connect_publisher
from safewatch.registry.divisions import load_divisions
from safewatch.schema.migrate import migrate
from safewatch.settings import MqttSettings

LEAGUE, BANNER = "150100", "150102"
BOILER_RATED = {"rated_pressure": 1.25, "safety_valve_low": 1.3, "safety_valve_high": 1.325, "rated_evaporation": 4,
                "report_interval_s": 5}
ELEVATOR_RATED = {"rated_speed": 1.75, "rated_load": 1000, "floors": 20, "report_interval_s": 5}
INSERT_GATEWAY = "INSERT INTO gateways (id, league_code, name) VALUES (%s, %s, %s)"
INSERT_EQUIPMENT = """
INSERT INTO equipment (code, category, variety, banner_code, rated, gateway_id) VALUES (%s, %s, %s, %s, %s, %s)
"""
SEED_STATE = """
INSERT INTO alert_engine_state (equipment_id, state) SELECT id, %(state)s FROM equipment WHERE category = %(category)s
"""
# The engine's transitions by equipment and rule, in order (registry alerts, raised on the wall clock, left out).
SELECT_TRANSITIONS = """
SELECT e.code, a.rule_key, t.from_state, t.to_state, (extract(epoch FROM t.event_at) * 1000)::bigint
FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id JOIN equipment e ON e.id = a.equipment_id
WHERE t.actor = 'engine' AND a.kind <> 'inspection'
ORDER BY t.id
"""
SELECT_SHARD = "SELECT packed FROM alert_engine_shard WHERE shard = %s"

Transitions = dict[tuple[str, str], list[tuple[str | None, str, int | None]]]


@dataclass(frozen=True)
class Fleet:
    """Equipment (code, category, gateway) of the rig: a boiler and two lifts on each of two gateways."""

    gateways: tuple[str, ...]
    equipment: tuple[tuple[str, str, str], ...]


def make_fleet(tag: str) -> Fleet:
    gateways = (f"crash-{tag}-a", f"crash-{tag}-b")
    serial = int(uuid.uuid4().hex[:6], 16) % 900_000
    equipment = []
    for g, gateway in enumerate(gateways):
        for j, category in enumerate(("1000", "3000", "3000")):
            prefix = "1100" if category == "1000" else "3110"
            equipment.append((f"{prefix}15{serial + g * 10 + j:012d}", category, gateway))
    return Fleet(gateways, tuple(equipment))


def create_rig_database(server_url: str, fleet: Fleet, *, seed_states: dict[str, dict[str, Any]]) -> str:
    """A fresh migrated database holding the fleet, with the trained detector states seeded (as saved)."""
    name = f"safewatch_crash_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    migrate(url, storage="plain")
    with psycopg.connect(url) as c:
        load_divisions(c)
        for gateway in fleet.gateways:
            c.execute(INSERT_GATEWAY, (gateway, LEAGUE, gateway))
        for code, category, gateway in fleet.equipment:
            rated = BOILER_RATED if category == "1000" else ELEVATOR_RATED
            c.execute(INSERT_EQUIPMENT, (code, category, code[:4], BANNER, Jsonb(rated), gateway))
        for category, state in seed_states.items():
            c.execute(SEED_STATE, {"state": Jsonb(state), "category": category})
    return url


def drop_database(server_url: str, url: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


# -- the stream ---------------------------------------------------------------------------------------------
def _normal(category: str, k: int) -> dict[str, float]:
    """The values the detectors were trained on (the bench publisher's), moving from instant to instant."""
    if category == "3000":
        return {"service_mode": 1, "car_moving": 1, "direction": 1, "door_zone": 0, "floor": k % 20 + 1,
                "door_locked": 1, "passenger_present": 1, "speed": k % 2 + 0.5}
    return {"drum_pressure": (k % 5 + 3) / 10, "drum_level": k % 40 - 20, "steam_temp": 170, "steam_flow": 2.5,
            "feedwater_temp": 90, "feedwater_pressure": 0.9, "furnace_temp": 850, "flue_gas_o2": 4.5}


def make_stream(fleet: Fleet, *, seed: int, messages: int, t0: int) -> list[tuple[str, bytes]]:
    """``messages`` (topic, payload) in publishing order; event time one second a message. The last one
    is telemetry at the newest time (the end is seen when the worker's checkpoint reaches it)."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes]] = []
    episodes: dict[str, tuple[str, int]] = {}  # equipment code → (episode, messages left)
    silent: dict[str, int] = {}  # equipment code → messages left silent
    ts = t0
    for k in range(messages):
        ts += 1000
        last = k == messages - 1
        roll = rng.random()
        if not last and roll < 0.03:
            code, category, gateway = rng.choice(fleet.equipment)
            kind = (rng.choice(["passenger_trapped", "door_open_fault"]) if category == "3000"
                    else rng.choice(["low_water_cutoff", "safety_valve_lift"]))
            payload = encode_event(Event(code, kind, ts, rng.random() < 0.55))
            out.append((build_topic(LEAGUE, gateway, Kind.EVENT), payload))
            continue
        if not last and roll < 0.045:
            gateway = rng.choice(fleet.gateways)
            state = rng.choice([GatewayState.OFFLINE, GatewayState.ONLINE])
            will = state is GatewayState.OFFLINE and rng.random() < 0.5  # a last will: no time of its own
            out.append((build_topic(LEAGUE, gateway, Kind.STATUS), encode_status(state) if will
                        else encode_status(state, ts)))
            continue
        gateway = fleet.gateways[k % 2]
        entries = []
        for code, category, gw in fleet.equipment:
            if gw != gateway:
                continue
            if silent.get(code, 0) > 0 and not last:
                silent[code] -= 1
                continue
            if rng.random() < 0.01:
                silent[code] = rng.randint(8, 20)  # 16-40 s of event time: past 3 report intervals
            values = _normal(category, k)
            episode, left = episodes.get(code, ("", 0))
            if left <= 0 and rng.random() < 0.04:
                episode, left = rng.choice(["breach", "spike", "ramp", "anomaly"]), rng.randint(1, 12)
            if left > 0:
                left -= 1
                if category == "1000":
                    if episode == "breach":
                        values["drum_pressure"] = rng.choice([1.21, 1.25, 1.35])  # high (5 s on-delay), high-high
                    elif episode == "ramp":
                        values["drum_level"] = -20 - 12 * (12 - left)  # falling fast
                    elif episode == "anomaly":
                        values["steam_temp"] = 260.0
                    else:
                        values["drum_pressure"] = 1.3
                else:
                    if episode in ("breach", "spike"):
                        values["speed"] = rng.choice([1.95, 2.2, 3.6])
                    elif episode == "anomaly":
                        values["speed"] = 9.0
                    else:
                        values["load"] = rng.choice([105.0, 115.0])
            episodes[code] = (episode, left)
            entries.append({"equipment": code, "ts": ts, "values": values})
        if entries:
            out.append((build_topic(LEAGUE, gateway, Kind.TELEMETRY), orjson.dumps({"readings": entries})))
    return out


def last_ts(stream: list[tuple[str, bytes]]) -> int:
    return max(e["ts"] for _, p in stream if p.startswith(b'{"readings"') for e in orjson.loads(p)["readings"])


# -- the reference and the comparison -----------------------------------------------------------------------
def reference(url: str, stream: list[tuple[str, bytes]], seed_states: dict[str, dict[str, Any]]) -> Transitions:
    """The pure engine over the stream message by message, never stopped; its effects written into ``url``."""
    with psycopg.connect(url) as c:
        engine = Engine()
        infos = load_equipment(c, [LEAGUE])
        engine.add(infos)
        engine.restore({i.id: seed_states[i.category] for i in infos if i.category in seed_states})
        now = int(time.time() * 1000)
        for topic, payload in stream:
            effects = engine.evaluate_decoded(decode_batch([Delivery(topic, payload, 0, 1, 0, now / 1000)], now))[0]
            if effects:
                with c.transaction():
                    write_effects(c, effects, engine.equipment)
    return transitions(url)


def transitions(url: str) -> Transitions:
    out: Transitions = defaultdict(list)
    with psycopg.connect(url) as c:
        for code, rule, before, after, at in c.execute(SELECT_TRANSITIONS):
            out[(code, rule)].append((before, after, at))
    return dict(out)


def mismatches(got: Transitions, want: Transitions) -> list[str]:
    """Each (equipment, rule) whose transitions differ, with the first difference."""
    out = []
    for key in sorted(set(got) | set(want)):
        a, b = got.get(key, []), want.get(key, [])
        if a != b:
            at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            out.append(f"{key}: at {at}, crashed {a[at:at + 2]} vs reference {b[at:at + 2]} ({len(a)} vs {len(b)})")
    return out


# -- the worker under test ----------------------------------------------------------------------------------
@dataclass
class AlertProcess:
    """`safewatch alerts` as a child process with a fixed client id (its broker session outlives it)."""

    db_url: str
    broker_url: str
    name: str
    checkpoint_s: float = 0.3
    lines: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None

    def __post_init__(self) -> None:
        self.env = {**os.environ, "SAFEWATCH_DB__URL": self.db_url, "SAFEWATCH_MQTT__URL": self.broker_url,
                    "SAFEWATCH_MQTT__SESSION_EXPIRY_S": "3600", "SAFEWATCH_LOG_JSON": "true",
                    "SAFEWATCH_ALERTS__WORKER_ID": self.name, "SAFEWATCH_ALERTS__METRICS_PORT": str(free_port()),
                    "SAFEWATCH_ALERTS__CHECKPOINT_S": str(self.checkpoint_s),
                    "SAFEWATCH_ALERTS__HOUSEKEEPING_S": "3600"}
        self._subscribed = threading.Semaphore(0)

    def start(self, timeout: float = 60.0) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "safewatch.cli", "alerts", "--leagues", LEAGUE],
                                     env=self.env, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        if not self._subscribed.acquire(timeout=timeout):
            raise AssertionError("the alert worker never subscribed:\n" + "".join(self.lines[-20:]))

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line)
            if '"subscribed"' in line:
                self._subscribed.release()

    def metric(self, name: str) -> float:
        """A counter of the worker's own /metrics (0 before it is exposed)."""
        import httpx

        try:
            text = httpx.get(f"http://127.0.0.1:{self.env['SAFEWATCH_ALERTS__METRICS_PORT']}/metrics", timeout=5).text
        except httpx.HTTPError:
            return 0.0
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(60)

    def exited_by_itself(self) -> bool:
        """The worker ended without our signal (a crash of its own)."""
        return self.proc is not None and self.proc.poll() is not None and self.proc.returncode not in (
            -signal.SIGKILL, -signal.SIGTERM, 0)


class Publisher:
    """QoS 1 publishing in order from one connection, waiting for the broker's acknowledgements."""

    def __init__(self, broker_url: str, name: str) -> None:
        self.client = connect_publisher(MqttSettings(url=broker_url), client_id=f"pub-{name}")

    def publish(self, items: list[tuple[str, bytes]]) -> None:
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in items]
        for info in infos:
            info.wait_for_publish(30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def checkpoint_watermark(url: str) -> int | None:
    from alerts.engine.checkpoint import unpack_shard  # here: the rest of this module runs on older workers too
    from alerts.store import shard_key

    with psycopg.connect(url) as c:
        row = c.execute(SELECT_SHARD, (shard_key([LEAGUE]),)).fetchone()
    return None if row is None else unpack_shard(bytes(row[0])).watermark_ms


def wait_covered(url: str, newest: int, worker: AlertProcess, timeout: float) -> None:
    """Until the worker's checkpoint covers the stream's last message (its event time reached the newest)."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while (checkpoint_watermark(url) or 0) < newest:
        if time.monotonic() > deadline or not worker.running:
            raise AssertionError(f"the checkpoint never reached the end of the stream; worker running: "
                                 f"{worker.running}\n" + "".join(worker.lines[-20:]))
        tick.wait(0.05)


@dataclass
class Outcome:
    trials: int
    kills: int
    terms: int
    messages: int
    transitions: int
    mismatches: list[str]
    own_exits: int
    seconds: float
    rules: tuple[str, ...] = ()


def run_trials(server_url: str, broker_url: str, *, trials: int, seed: int, checkpoint_s: float,
               max_delay_s: float, chunk: tuple[int, int] = (10, 60), sigterm_share: float = 0.1) -> Outcome:
    """The whole experiment on the shared server's databases and the given broker."""
    started = time.monotonic()
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:6]
    fleet = make_fleet(tag)
    seeds = trained_states()
    sizes = [rng.randint(*chunk) for _ in range(trials)]
    stream = make_stream(fleet, seed=seed, messages=sum(sizes) + 1, t0=int(time.time() * 1000) - 4 * 3_600_000)
    urls = [create_rig_database(server_url, fleet, seed_states=seeds) for _ in range(2)]
    worker = AlertProcess(urls[0], broker_url, f"crash-{tag}", checkpoint_s=checkpoint_s)
    publisher = Publisher(broker_url, tag)
    kills = terms = own_exits = 0
    try:
        want = reference(urls[1], stream, seeds)
        worker.start()
        sent = 0
        for size in sizes:
            publisher.publish(stream[sent:sent + size])
            sent += size
            if not worker.running:
                if worker.exited_by_itself():
                    own_exits += 1
                worker.start()
            threading.Event().wait(rng.uniform(0, max_delay_s))  # the random moment of the fault, not a wait
            if rng.random() < sigterm_share:
                worker.kill(signal.SIGTERM)
                terms += 1
            else:
                worker.kill(signal.SIGKILL)
                kills += 1
        publisher.publish(stream[sent:])
        worker.start()
        wait_covered(urls[0], last_ts(stream), worker, timeout=300)
        worker.kill(signal.SIGTERM)
        got = transitions(urls[0])
        return Outcome(trials, kills, terms, len(stream), sum(map(len, want.values())), mismatches(got, want),
                       own_exits, time.monotonic() - started, tuple(sorted({rule for _, rule in want})))
    finally:
        if worker.running:
            worker.kill(signal.SIGKILL)
        publisher.close()
        for url in urls:
            drop_database(server_url, url)


@contextmanager
def _broker() -> Iterator[str]:
    from bench.ingest.instances import PrivateBroker

    with PrivateBroker(shipped=True) as broker:
        yield broker.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--checkpoint-s", type=float, default=0.3)
    parser.add_argument("--max-delay-s", type=float, default=1.5)
    parser.add_argument("--server", default=os.environ.get("SAFEWATCH_TEST_DB_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    print(brief())
    with _broker() as broker_url:
        out = run_trials(args.server, broker_url, trials=args.trials, seed=args.seed,
                         checkpoint_s=args.checkpoint_s, max_delay_s=args.max_delay_s)
    print(f"trials {out.trials}: kill -9 {out.kills}, SIGTERM {out.terms}; {out.messages} messages, "
          f"{out.transitions} reference transitions; worker exits of its own {out.own_exits}; "
          f"mismatches {len(out.mismatches)}; {out.seconds:.0f} s")
    print(f"rules with transitions: {', '.join(out.rules)}")
    for line in out.mismatches[:20]:
        print("  " + line)
    print(f"after: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sys.exit(1 if out.mismatches or out.own_exits else 0)


if __name__ == "__main__":
    main()
