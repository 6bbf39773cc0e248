"""The cost of the alert engine's checkpoint: packing every changed equipment's state, and writing it.

``python -m bench.alerts.checkpoint [--equipment 20000] [--repeats 3]``

The bench fleet of ``bench.alerts.engine`` (a quarter boilers, the rest elevators), every anomaly
detector restored past learning as ``bench.ingest`` starts it, one instant evaluated for every
equipment (so every state has changed: the worst case, and the steady state of shape (b), where each
equipment reports several times a checkpoint interval). Then ``Engine.checkpoint`` (pack) and
``save_checkpoint`` (COPY + upsert into a database of its own on the shared PostgreSQL, committed) are
timed, ``--repeats`` times; the best is printed per checkpoint, per equipment, and the bytes written.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

import psycopg
from psycopg.types.json import Jsonb

from alerts.store import save_checkpoint
from alerts.worker import Engine
from bench.alerts.engine import fleet, messages, trained_states
from bench.machine import brief
from safewatch.db import with_database
from safewatch.registry.divisions import load_divisions
from safewatch.schema.migrate import migrate

INSERT_GATEWAY = "INSERT INTO gateways (id, league_code, name) VALUES ('bench-gw', '150100', 'bench')"
INSERT_EQUIPMENT = """
INSERT INTO equipment (id, code, category, variety, banner_code, rated, gateway_id)
OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s, %s, '150102', %s, 'bench-gw')
"""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.alerts.checkpoint", description=__doc__.splitlines()[0])
    parser.add_argument("--equipment", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--server", default=os.environ.get("SAFEWATCH_TEST_DB_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    print(brief())
    infos = fleet(args.equipment)
    engine = Engine()
    engine.add(infos)
    trained = trained_states()
    engine.restore({info.id: trained[info.category] for info in infos})
    now = int(time.time() * 1000)
    t0 = now - 3_600_000
    name = f"safewatch_bench_ckpt_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(args.server, name)
    try:
        migrate(url, storage="plain")
        with psycopg.connect(url) as c:
            load_divisions(c)
            c.execute(INSERT_GATEWAY)
            with c.cursor() as cur:
                cur.executemany(INSERT_EQUIPMENT, [(i.id, i.code, i.category, i.code[:4], Jsonb(i.rated))
                                                   for i in infos])
            c.commit()
            best_pack = best_write = float("inf")
            size = tables = 0
            for r in range(args.repeats):
                for batch in [messages(infos, t0 + r * 1000, r, entries=50)]:
                    engine.evaluate(batch, now)
                assert len(engine.dirty) == len(infos)
                started = time.perf_counter()
                packed, shard = engine.checkpoint(())
                packed_s = time.perf_counter() - started
                started = time.perf_counter()
                with c.transaction():
                    save_checkpoint(c, leagues=["150100"], equipment=packed, shard=shard)
                write_s = time.perf_counter() - started
                best_pack, best_write = min(best_pack, packed_s), min(best_write, write_s)
                size = sum(len(a) + len(b or b"") for a, b in packed.values())
                tables = sum(b is not None for _, b in packed.values())
        n = len(infos)
        print(f"{n} equipment ({len(infos[::4])} boilers, the rest elevators), detectors past learning, every "
              f"state changed; best of {args.repeats}: pack {best_pack:.2f} s ({best_pack / n * 1e6:.0f} µs an "
              f"equipment), write {best_write:.2f} s ({best_write / n * 1e6:.0f} µs an equipment), "
              f"{size / 2**20:.1f} MiB ({size / n / 1024:.1f} KiB an equipment; detector tables of {tables} "
              f"written in the last)")
    finally:
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
