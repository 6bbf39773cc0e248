"""Folding registry counts and open alerts into the overview (pure)."""

from __future__ import annotations

from api.dashboard.overview import RegistryCount, fold_overview


def _division(code: str, level: str, parent: str | None, league: str | None) -> dict:
    return {"code": code, "name": code, "name_en": None, "parent_code": parent, "level": level, "league_code": league,
            "region_code": "150000"}


LEAGUE = [_division("150200", "league", "150000", None), _division("150202", "banner", "150200", "150200"),
          _division("150203", "banner", "150200", "150200")]
COUNTS = [RegistryCount("150202", 40.6, 109.8, 10, 9, 2), RegistryCount("150203", 40.6, 109.8, 5, 0, 0),
          RegistryCount("150203", None, None, 3, 3, 1), RegistryCount("150102", 40.8, 111.7, 99, 99, 0)]


def test_banners_carry_their_counts_and_outside_banners_are_dropped():
    folded = fold_overview(LEAGUE, COUNTS, [])
    by_code = {d["code"]: d for d in folded["divisions"]}
    assert set(by_code) == {"150200", "150202", "150203"}
    assert (by_code["150202"]["equipment"], by_code["150202"]["online"], by_code["150202"]["inspections_overdue"]) \
        == (10, 9, 2)
    assert (by_code["150203"]["equipment"], by_code["150203"]["online"]) == (8, 3)
    assert by_code["150200"]["equipment"] == 0  # the page rolls banners up; the league row holds none itself


def test_cells_merge_banners_of_one_league_and_skip_unplaced_equipment():
    cells = fold_overview(LEAGUE, COUNTS, [])["cells"]
    assert cells == [[40.6, 109.8, "150200", 15, 6]]  # 10 + 5 equipment, 1 + 5 offline; 3 have no position


def test_open_alerts_count_by_severity_in_scope_only():
    alerts = [{"division_code": "150202", "severity": "critical", "n": 2},
              {"division_code": "150202", "severity": "warning", "n": 1},
              {"division_code": "150102", "severity": "critical", "n": 7}]
    by_code = {d["code"]: d for d in fold_overview(LEAGUE, COUNTS, alerts)["divisions"]}
    assert (by_code["150202"]["critical"], by_code["150202"]["warning"], by_code["150202"]["major"]) == (2, 1, 0)
