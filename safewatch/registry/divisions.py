"""Administrative divisions (region → league → banner), loaded from a GB/T 2260 CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg

SHIPPED_CSV = "inner_mongolia_divisions.csv"
LEVELS = ("region", "league", "banner")

UPSERT_DIVISION = """
INSERT INTO divisions (code, name, name_en, parent_code, level, league_code, region_code)
VALUES (%(code)s, %(name)s, %(name_en)s, %(parent_code)s, %(level)s, %(league_code)s, %(region_code)s)
ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, name_en = EXCLUDED.name_en,
    parent_code = EXCLUDED.parent_code, level = EXCLUDED.level,
    league_code = EXCLUDED.league_code, region_code = EXCLUDED.region_code
"""


@dataclass(frozen=True, slots=True)
class Division:
    """One division with its ancestors resolved."""

    code: str
    name: str
    name_en: str | None
    parent_code: str | None
    level: str
    league_code: str | None
    region_code: str | None


def parse_divisions(text: str) -> list[Division]:
    """Parse ``code,name,name_en,parent_code,level`` rows; parents come before children in the result."""
    rows = list(csv.DictReader(io.StringIO(text)))
    by_code = {r["code"]: r for r in rows}
    _check_tree(rows, by_code)
    out: list[Division] = []
    for level in LEVELS:
        for row in rows:
            if row["level"] != level:
                continue
            parent = row["parent_code"] or None
            if parent is not None and parent not in by_code:
                raise ValueError(f"division {row['code']} names parent {parent}, which is not in the file")
            if level == "region":
                league, region = None, None
            elif level == "league":
                league, region = row["code"], parent
            else:
                league = parent
                region = by_code[parent]["parent_code"] or None if parent else None
            out.append(Division(row["code"], row["name"], row["name_en"] or None, parent, level, league, region))
    unknown = {r["level"] for r in rows} - set(LEVELS)
    if unknown:
        raise ValueError(f"unknown division levels {sorted(unknown)}; expected {LEVELS}")
    return out


# The level a division's parent must have: the tree is region → league → banner, whatever the province.
_PARENT_LEVEL = {"region": None, "league": "region", "banner": "league"}


def _check_tree(rows: list[dict[str, str]], by_code: dict[str, dict[str, str]]) -> None:
    """Refuse a file whose rows do not form region → league → banner, naming the line and why."""
    for line, row in enumerate(rows, start=2):
        code, level, parent = row.get("code") or "", row.get("level") or "", row.get("parent_code") or ""
        if not (len(code) == 6 and code.isdigit()):
            raise ValueError(f"line {line}: code {code!r} is not a 6-digit GB/T 2260 code")
        if level not in _PARENT_LEVEL:
            continue  # reported with every unknown level below
        expected = _PARENT_LEVEL[level]
        if expected is None and parent:
            raise ValueError(f"line {line}: region {code} has a parent ({parent}); a region is the top")
        if expected is not None and parent in by_code and by_code[parent]["level"] != expected:
            raise ValueError(f"line {line}: {level} {code} has parent {parent}, a {by_code[parent]['level']}; "
                             f"a {level}'s parent is a {expected}")
        if expected is not None and not parent:
            raise ValueError(f"line {line}: {level} {code} names no parent {expected}")


def shipped_divisions_text() -> str:
    return resources.files("safewatch.data").joinpath(SHIPPED_CSV).read_text(encoding="utf-8")


def load_divisions(conn: psycopg.Connection, csv_path: Path | None = None) -> int:
    """Upsert divisions from ``csv_path`` (default: the shipped Inner Mongolia file); return the count."""
    text = csv_path.read_text(encoding="utf-8") if csv_path else shipped_divisions_text()
    divisions = parse_divisions(text)
    with conn.cursor() as cur:
        cur.executemany(UPSERT_DIVISION, [_as_dict(d) for d in divisions])
    return len(divisions)


def _as_dict(d: Division) -> dict[str, str | None]:
    return {f: getattr(d, f) for f in Division.__dataclass_fields__}
