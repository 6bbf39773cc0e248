"""The ingest's view of the registry: equipment code → (id, gateway, category), refreshed on a miss."""

from __future__ import annotations

import time
from collections.abc import Set

import psycopg

from ingest.batching import Bound

SELECT_BOUND_EQUIPMENT = """
SELECT code, id, gateway_id, category FROM equipment WHERE code = ANY(%s) AND status <> 'cancelled'
"""


#: Unknown codes remembered at most (about 100 bytes each): a gateway sending ever new codes that are
#: registered nowhere must not grow the ingest without end. Past it, the expired ones go; should that
#: not be enough (a flood), all of them: they are looked up again, once a batch.
MAX_MISSING = 100_000


class RegistryCache(dict[str, Bound]):
    """A dict of bound equipment; unknown codes are looked up at most once per ``negative_ttl_s``."""

    def __init__(self, negative_ttl_s: float = 30.0) -> None:
        super().__init__()
        self._missing: dict[str, float] = {}
        self._negative_ttl_s = negative_ttl_s

    def refresh(self, conn: psycopg.Connection, codes: Set[str]) -> None:
        """Look up the codes not cached (nor recently found missing)."""
        now = time.monotonic()
        # Every batch passes through here: the set difference keeps the steady state (all cached) in C.
        wanted = sorted(c for c in codes - self.keys() if self._missing.get(c, 0.0) <= now)
        if not wanted:
            return
        rows = conn.execute(SELECT_BOUND_EQUIPMENT, (wanted,)).fetchall()
        conn.commit()
        for code, eq_id, gateway_id, category in rows:
            self[code] = Bound(eq_id, gateway_id, category)
        for code in set(wanted) - {r[0] for r in rows}:
            self._missing[code] = now + self._negative_ttl_s
        if len(self._missing) > MAX_MISSING:
            self._missing = {c: t for c, t in self._missing.items() if t > now}
            if len(self._missing) > MAX_MISSING:
                self._missing.clear()
