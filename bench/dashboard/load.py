"""Load a large generated registry into a fresh database with COPY (minutes of INSERTs become seconds)."""

from __future__ import annotations

import random
from typing import Any

import orjson
import psycopg

from safewatch.registry.divisions import parse_divisions, shipped_divisions_text
from safewatch.registry.seed import demo_registry

COPY_UNITS = "COPY units (uscc, name, division_code, address, safety_manager, phone) FROM STDIN"
COPY_GATEWAYS = "COPY gateways (id, league_code, name) FROM STDIN"
COPY_EQUIPMENT = """
COPY equipment (code, category, variety, registration_no, unit_id, banner_code, lat, lon, address, manufacturer,
                model, manufactured_on, commissioned_on, rated, status, last_inspection_on, next_inspection_on,
                gateway_id) FROM STDIN
"""
COPY_GATEWAY_STATUS = "COPY gateway_status (gateway_id, state, since) FROM STDIN"
SELECT_UNIT_IDS = "SELECT uscc, id FROM units"
# Open alerts on a sample of the equipment, severities mixed, a few escalated: the counts the overview shows.
INSERT_OPEN_ALERTS = """
INSERT INTO alerts (equipment_id, rule_key, severity, state, active, level, division_code, league_code, message,
                    opened_at, updated_at)
SELECT e.id, 'bench.rule.' || (e.id %% 7), (ARRAY['critical', 'major', 'minor', 'warning'])[1 + e.id %% 4],
       'active_unack', true, (ARRAY['banner', 'banner', 'banner', 'league'])[1 + e.id %% 4], e.banner_code,
       d.league_code, 'benchmark alert', now() - (e.id %% 600) * interval '1 minute', now()
FROM equipment e JOIN divisions d ON d.code = e.banner_code
WHERE e.id %% %(every)s = 0
"""

UNIT_COLUMNS = ("uscc", "name", "division_code", "address", "safety_manager", "phone")
EQUIPMENT_COLUMNS = ("code", "category", "variety", "registration_no", "unit_id", "banner_code", "lat", "lon",
                     "address", "manufacturer", "model", "manufactured_on", "commissioned_on", "rated", "status",
                     "last_inspection_on", "next_inspection_on", "gateway_id")


def load_registry(url: str, n: int, *, seed: int = 1, offline_share: float = 0.08,
                  alert_every: int = 400) -> dict[str, Any]:
    """Insert ``n`` generated equipment with units, gateways, gateway status and some open alerts."""
    registry = demo_registry(parse_divisions(shipped_divisions_text()), n, seed=seed, gateway_prefix="bench")
    rng = random.Random(seed)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(COPY_UNITS) as copy:
            for u in registry.units:
                copy.write_row([u[c] for c in UNIT_COLUMNS])
        with cur.copy(COPY_GATEWAYS) as copy:
            for g in registry.gateways:
                copy.write_row([g["id"], g["league_code"], g["name"]])
        unit_ids: dict[str, int] = dict(cur.execute(SELECT_UNIT_IDS).fetchall())
        with cur.copy(COPY_EQUIPMENT) as copy:
            for e in registry.equipment:
                row = {**e, "unit_id": unit_ids[e["unit_uscc"]], "rated": orjson.dumps(e["rated"]).decode()}
                copy.write_row([row[c] for c in EQUIPMENT_COLUMNS])
        with cur.copy(COPY_GATEWAY_STATUS) as copy:
            for g in registry.gateways:
                copy.write_row([g["id"], "offline" if rng.random() < offline_share else "online", "2026-11-01"])
        cur.execute(INSERT_OPEN_ALERTS, {"every": alert_every})
        alerts = cur.rowcount
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return {"equipment": len(registry.equipment), "units": len(registry.units), "gateways": len(registry.gateways),
            "open_alerts": alerts}
