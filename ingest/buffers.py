"""Whether PostgreSQL's shared buffers hold the ingest's write working set, and what to set if not.

Each equipment's newest row goes to the right end of its own range in the readings' primary key
(equipment, time), so every reporting equipment keeps one leaf page of that index in use, 8 KiB
each, besides the pages the heap, the rollups and the index's upper levels take. Below that,
PostgreSQL reads index pages back in for about two rows in three it writes, and its CPU a reading rises
(measured: docs/decisions/shared-buffers.md, figures in docs/performance.md).
PostgreSQL's own default is 128 MB; timescaledb-tune (run by the TimescaleDB image) sets a quarter of
the memory.
"""

from __future__ import annotations

import logging
import math

import psycopg

from safewatch.db import one_row

log = logging.getLogger(__name__)

PAGE_BYTES = 8192
# The leaf pages alone are the floor; the heap's newest pages, the rollups' and the index's upper
# levels want about half as much again.
HEADROOM = 1.5

SHARED_BUFFERS_AND_EQUIPMENT = """
SELECT pg_size_bytes(current_setting('shared_buffers')) AS shared_buffers,
       (SELECT count(*) FROM equipment) AS equipment
"""


def wanted_buffers(equipment: int) -> int:
    """The shared buffers, in bytes, that hold the write working set of ``equipment`` reporting."""
    return math.ceil(equipment * PAGE_BYTES * HEADROOM)


def buffers_advice(shared_buffers: int, equipment: int) -> str | None:
    """What to do when ``shared_buffers`` (bytes) is below the working set of ``equipment``; None if it holds."""
    wanted = wanted_buffers(equipment)
    if shared_buffers >= wanted:
        return None
    mib = -(-wanted // 2**20)
    return (f"PostgreSQL's shared_buffers ({shared_buffers // 2**20} MiB) is below the write working set of "
            f"{equipment:,} equipment (about {mib:,} MiB): it will read index pages back in for most rows "
            f"it writes. Set shared_buffers to at least {mib}MB (a quarter of the server's memory is usual) "
            f"and restart PostgreSQL")


def buffers_and_fleet(conn: psycopg.Connection) -> tuple[int, int]:
    """This server's shared_buffers (bytes) and the number of equipment in the registry."""
    with conn.transaction():
        shared_buffers, equipment = one_row(conn.execute(SHARED_BUFFERS_AND_EQUIPMENT))
    return int(shared_buffers), int(equipment)


def check_buffers(conn: psycopg.Connection) -> str | None:
    """Log (warning) and return the advice when this server's shared buffers are too small for the registry."""
    shared_buffers, equipment = buffers_and_fleet(conn)
    advice = buffers_advice(shared_buffers, equipment)
    if advice is not None:
        log.warning(advice, extra={"shared_buffers": shared_buffers, "equipment": equipment,
                                   "wanted_bytes": wanted_buffers(equipment)})
    return advice
