"""A generated demo registry: units, gateways and equipment spread over every banner (pure + one writer).

Used by `safewatch demo` and the tests; the simulated fleet is then built from what is in the database.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import orjson
import psycopg

from safewatch.registry.codes import USCC_ALPHABET, uscc_check_char
from safewatch.registry.divisions import Division

# Approximate seats of the 12 leagues (display only: places demo equipment on the map).
LEAGUE_CENTRES: dict[str, tuple[float, float]] = {
    "150100": (40.84, 111.75), "150200": (40.66, 109.84), "150300": (39.66, 106.79), "150400": (42.26, 118.89),
    "150500": (43.65, 122.24), "150600": (39.61, 109.78), "150700": (49.21, 119.77), "150800": (40.74, 107.39),
    "150900": (41.00, 113.13), "152200": (46.08, 122.07), "152500": (43.93, 116.09), "152900": (38.85, 105.73),
}
# Plate letters per league (DOMAIN.md), used in registration certificate numbers.
LEAGUE_LETTER = {"150100": "A", "150200": "B", "150300": "C", "150400": "D", "150700": "E", "152200": "F",
                 "150500": "G", "152500": "H", "150900": "J", "150600": "K", "150800": "L", "152900": "M"}
CERT_CHAR = {"1": "锅", "2": "容", "3": "梯"}
# (variety, share): elevators dominate real registries, then vessels, then boilers.
VARIETIES = (("3110", 0.45), ("3120", 0.08), ("3310", 0.05), ("2150", 0.12), ("2170", 0.13),
             ("1100", 0.09), ("1200", 0.08))
PER_GATEWAY = 20


@dataclass(frozen=True, slots=True)
class DemoRegistry:
    units: list[dict[str, Any]]
    gateways: list[dict[str, Any]]
    equipment: list[dict[str, Any]]


def rated_parameters(variety: str, rng: random.Random) -> dict[str, float]:
    """Plausible rated parameters per category (TSG 11 safety-valve rule for steam boilers)."""
    if variety.startswith("1"):
        p = rng.choice((1.0, 1.25, 1.6, 2.5))
        return {"rated_pressure": p, "safety_valve_low": round(1.04 * p, 3), "safety_valve_high": round(1.06 * p, 3),
                "rated_evaporation": rng.choice((2.0, 4.0, 6.0, 10.0, 20.0))}
    if variety.startswith("2"):
        design = rng.choice((0.8, 1.0, 1.6))
        return {"design_pressure": design, "safety_valve_set": round(0.97 * design, 3),
                "design_temperature": 150.0, "volume": rng.choice((0.5, 1.0, 2.0, 5.0))}
    return {"rated_speed": rng.choice((1.0, 1.5, 1.75, 2.5)), "rated_load": rng.choice((630.0, 800.0, 1000.0, 1600.0)),
            "floors": float(rng.randint(6, 33))}


def _uscc(division: str, rng: random.Random) -> str:
    body = "91" + division + "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
    return body + uscc_check_char(body)


def serial(i: int) -> str:
    """The 5-character serial of an equipment code: digits up to 99999, then 'A' + base 36 (DOMAIN.md)."""
    if i < 100_000:
        return f"{i:05d}"
    n, digits = i - 100_000, ""
    for _ in range(4):
        n, r = divmod(n, 36)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[r] + digits
    if n:
        raise ValueError(f"serial index {i} is beyond the 5-character range")
    return "A" + digits


def demo_registry(divisions: list[Division], n: int, *, seed: int = 1, today: date | None = None,
                  gateway_prefix: str = "gw", serial_start: int = 0) -> DemoRegistry:
    """``n`` equipment spread round-robin over every banner, with units and gateways.

    ``gateway_prefix`` and ``serial_start`` keep several generated fleets apart in one database.
    """
    rng = random.Random(seed)
    today = today or date(2026, 11, 1)
    banners = [d for d in divisions if d.level == "banner"]
    varieties, weights = zip(*VARIETIES, strict=True)
    units: list[dict[str, Any]] = []
    gateways: list[dict[str, Any]] = []
    equipment: list[dict[str, Any]] = []
    # The unit and gateway currently filling up in each banner (equipment goes round-robin over banners).
    current: dict[str, tuple[str, str]] = {}
    for i in range(n):
        banner = banners[i % len(banners)]
        league = banner.league_code or banner.code
        slot = i // len(banners)
        if slot % PER_GATEWAY == 0:
            units.append({"uscc": _uscc(banner.code, rng),
                          "name": f"{banner.name}第{slot // PER_GATEWAY + 1}使用单位({gateway_prefix})",
                          "division_code": banner.code, "address": f"{banner.name}", "safety_manager": "张三",
                          "phone": f"0471-{rng.randint(1000000, 9999999)}"})
            gateways.append({"id": f"{gateway_prefix}-{banner.code}-{slot // PER_GATEWAY + 1:03d}",
                             "league_code": league, "name": f"{banner.name} gateway {slot // PER_GATEWAY + 1}"})
            current[banner.code] = (units[-1]["uscc"], gateways[-1]["id"])
        unit_uscc, gateway_id = current[banner.code]
        variety = rng.choices(varieties, weights)[0]
        year = rng.randint(2005, 2025)
        code = f"{variety}15{rng.randint(0, 999):03d}{year}{serial(serial_start + i)}"
        lat0, lon0 = LEAGUE_CENTRES.get(league, (41.0, 111.0))
        last = today - timedelta(days=rng.randint(0, 420))
        equipment.append({
            "code": code, "category": variety[0] + "000", "variety": variety,
            "registration_no": f"{CERT_CHAR[variety[0]]}{variety[1:3]}蒙{LEAGUE_LETTER.get(league, 'A')}"
                               f"{(serial_start + i) % 100000:05d}({year % 100:02d})",
            "unit_uscc": unit_uscc, "banner_code": banner.code,
            "lat": round(lat0 + rng.uniform(-0.4, 0.4), 5), "lon": round(lon0 + rng.uniform(-0.6, 0.6), 5),
            "address": f"{banner.name}{rng.randint(1, 300)}号", "manufacturer": "示例制造有限公司",
            "model": f"M-{variety}", "manufactured_on": date(year, rng.randint(1, 12), 1),
            "commissioned_on": date(min(year + 1, 2026), 6, 1), "rated": rated_parameters(variety, rng),
            "status": "in_use", "last_inspection_on": last, "next_inspection_on": last + timedelta(days=365),
            "gateway_id": gateway_id,
        })
    return DemoRegistry(units, gateways, equipment)


INSERT_UNIT = """
INSERT INTO units (uscc, name, division_code, address, safety_manager, phone)
VALUES (%(uscc)s, %(name)s, %(division_code)s, %(address)s, %(safety_manager)s, %(phone)s)
ON CONFLICT (uscc) DO NOTHING
"""
INSERT_GATEWAY = """
INSERT INTO gateways (id, league_code, name) VALUES (%(id)s, %(league_code)s, %(name)s) ON CONFLICT (id) DO NOTHING
"""
INSERT_EQUIPMENT = """
INSERT INTO equipment (code, category, variety, registration_no, unit_id, banner_code, lat, lon, address,
                       manufacturer, model, manufactured_on, commissioned_on, rated, status,
                       last_inspection_on, next_inspection_on, gateway_id)
SELECT %(code)s, %(category)s, %(variety)s, %(registration_no)s, u.id, %(banner_code)s, %(lat)s, %(lon)s,
       %(address)s, %(manufacturer)s, %(model)s, %(manufactured_on)s, %(commissioned_on)s, %(rated)s, %(status)s,
       %(last_inspection_on)s, %(next_inspection_on)s, %(gateway_id)s
FROM units u WHERE u.uscc = %(unit_uscc)s
ON CONFLICT (code) DO NOTHING
"""


def insert_registry(conn: psycopg.Connection, registry: DemoRegistry) -> int:
    """Insert a generated registry (idempotent by natural keys); return the equipment count inserted."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(INSERT_UNIT, registry.units)
        cur.executemany(INSERT_GATEWAY, registry.gateways)
        rows = [{**e, "rated": orjson.dumps(e["rated"]).decode()} for e in registry.equipment]
        cur.executemany(INSERT_EQUIPMENT, rows)
        inserted = conn.execute("SELECT count(*) FROM equipment").fetchone()
    return int(inserted[0]) if inserted else 0
