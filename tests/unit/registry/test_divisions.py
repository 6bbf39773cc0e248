"""Divisions from data (pure): any province's region → league → banner tree, bad files named by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from safewatch.registry.divisions import parse_divisions, shipped_divisions_text

NINGXIA = Path(__file__).parents[2] / "integration" / "api" / "ningxia_divisions.csv"
HEADER = "code,name,name_en,parent_code,level\n"


def test_shipped_inner_mongolia() -> None:
    divisions = parse_divisions(shipped_divisions_text())
    levels = [d.level for d in divisions]
    assert (len(divisions), levels.count("region"), levels.count("league"), levels.count("banner")) == (116, 1, 12, 103)
    xincheng = next(d for d in divisions if d.code == "150102")
    assert (xincheng.league_code, xincheng.region_code) == ("150100", "150000")


def test_another_province() -> None:
    divisions = {d.code: d for d in parse_divisions(NINGXIA.read_text(encoding="utf-8"))}
    assert (divisions["640104"].league_code, divisions["640104"].region_code) == ("640100", "640000")
    assert divisions["640100"].league_code == "640100"


@pytest.mark.parametrize(("rows", "why"), [
    ("640000,宁夏,,,region\n640104,兴庆区,,640000,banner\n", "line 3: banner 640104 has parent 640000, a region"),
    ("640000,宁夏,,,region\n640100,银川,,,league\n", "line 3: league 640100 names no parent region"),
    ("6400,宁夏,,,region\n", "line 2: code '6400' is not a 6-digit"),
    ("640000,宁夏,,,region\n640100,银川,,649999,league\n", "names parent 649999, which is not in the file"),
    ("640000,宁夏,,,province\n", "unknown division levels ['province']"),
])
def test_bad_files_say_which_line_and_why(rows: str, why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("(", r"\(").replace("[", r"\[")):
        parse_divisions(HEADER + rows)
