"""Registry record rules (pure): per-category rated parameters, consistency, references, audit diffs."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from safewatch.registry.importing import validate_rows
from safewatch.registry.records import (
    DivisionRef,
    EquipmentRecord,
    References,
    UnitRecord,
    changes,
    reference_problems,
)

USCC = "91110000600037341L"
BOILER: dict[str, Any] = {"code": "110015123201500001", "unit_uscc": USCC, "banner_code": "150102",
          "rated": {"rated_pressure": 1.25, "rated_evaporation": 4, "safety_valve_low": 1.3,
                    "safety_valve_high": 1.325}}
VESSEL = {"code": "217015123201500001", "unit_uscc": USCC, "banner_code": "150102",
          "rated": {"design_pressure": 0.8, "design_temperature": 60, "volume": 1, "safety_valve_set": 0.77}}
ELEVATOR: dict[str, Any] = {"code": "311015123201500001", "unit_uscc": USCC, "banner_code": "150102",
            "rated": {"rated_speed": 1.75, "rated_load": 1000, "floors": 18}}


def errors_of(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        EquipmentRecord.model_validate(data)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


@pytest.mark.parametrize(("data", "category", "variety"), [
    (BOILER, "1000", "1100"), (VESSEL, "2000", "2170"), (ELEVATOR, "3000", "3110")])
def test_good_records_of_each_category(data: dict[str, Any], category: str, variety: str) -> None:
    record = EquipmentRecord.model_validate(data)
    assert (record.category, record.variety) == (category, variety)
    assert all(isinstance(v, float) for v in record.rated.values())


def test_escalator_needs_no_rated_load() -> None:
    record = EquipmentRecord.model_validate({**ELEVATOR, "code": "331015123201500001", "rated": {"rated_speed": 0.5}})
    assert record.variety == "3310"


@pytest.mark.parametrize(("change", "loc", "why"), [
    ({"rated": {"rated_speed": 1.75}}, ("rated", "rated_load"), "required"),
    ({"rated": {"rated_speed": -1, "rated_load": 1000}}, ("rated", "rated_speed"), "greater than 0"),
    ({"rated": {"rated_speed": 1, "rated_load": 1000, "design_pressure": 1}}, ("rated", "design_pressure"),
     "Extra inputs"),
    ({"variety": "1100"}, ("variety",), "category 1000 but code"),
    ({"variety": "9999"}, ("variety",), "not a TSG class"),
    ({"category": "2000"}, ("category",), "disagrees"),
    ({"code": "311015123201500001X"}, ("code",), "year 150"),
    ({"code": "3110-1512320150000"}, ("code",), "neither"),
    ({"unit_uscc": "91110000600037341M"}, ("unit_uscc",), "check character"),
    ({"banner_code": "15010"}, ("banner_code",), "pattern"),
    ({"registration_no": "锅11蒙A00001(24)"}, ("registration_no",), "category 1000"),
    ({"manufactured_on": "2020-01-01", "commissioned_on": "2019-01-01"}, ("commissioned_on",), "before"),
    ({"last_inspection_on": "2026-01-01", "next_inspection_on": "2025-01-01"}, ("next_inspection_on",), "before"),
    ({"lat": 40.0}, ("lon",), "both"),
    ({"lat": 91, "lon": 0}, ("lat",), "less than or equal"),
    ({"status": "broken"}, ("status",), "Input should be"),
    ({"colour": "red"}, ("colour",), "Extra inputs"),
    ({"address": "a\x00b"}, ("address",), "NUL"),
    ({"rescue_code": "12345"}, ("rescue_code",), "6 digits"),
])
def test_bad_records_name_the_field_and_why(change: dict[str, Any], loc: tuple[str, ...], why: str) -> None:
    found = errors_of({**ELEVATOR, **change})
    assert any(got_loc == loc and why in msg for got_loc, msg in found), found


def test_boiler_rules() -> None:
    assert errors_of({**BOILER, "rated": {**BOILER["rated"], "safety_valve_low": 1.4}})[0][0] == ("rated",)
    found = errors_of({**BOILER, "rated": {"rated_pressure": 1.25, "safety_valve_low": 1.3,
                                           "safety_valve_high": 1.325}})
    assert "rated_evaporation" in found[0][1]


def test_rescue_code_only_on_elevators() -> None:
    assert errors_of({**BOILER, "rescue_code": "123456"}) == [(("rescue_code",), "is for elevators only (category "
                                                                                   "3000)")]


def test_unit_record() -> None:
    assert UnitRecord(uscc="91110000600037341l", name="测试", division_code="150102").uscc == USCC
    with pytest.raises(ValidationError, match="check character"):
        UnitRecord(uscc="91110000600037341A", name="测试", division_code="150102")


REFS = References(
    divisions={"150102": DivisionRef("banner", "150100"), "150100": DivisionRef("league", "150100"),
               "150202": DivisionRef("banner", "150200")},
    in_scope=lambda code: code.startswith("1501"),
    units={USCC: False, "91150102000000001X": True},
    gateways={"gw-1": "150100", "gw-2": "150200"},
    codes_taken={"311015123201500009"},
)


@pytest.mark.parametrize(("change", "field", "kind"), [
    ({"banner_code": "150999"}, "banner_code", "unknown"),
    ({"banner_code": "150100"}, "banner_code", "mismatch"),
    ({"banner_code": "150202"}, "banner_code", "forbidden"),
    ({"unit_uscc": "91150102000000002X"}, "unit_uscc", "unknown"),
    ({"gateway_id": "gw-9"}, "gateway_id", "unknown"),
    ({"gateway_id": "gw-2"}, "gateway_id", "mismatch"),
    ({"code": "311015123201500009"}, "code", "duplicate"),
])
def test_reference_problems(change: dict[str, Any], field: str, kind: str) -> None:
    record = EquipmentRecord.model_construct(**{**EquipmentRecord.model_validate(ELEVATOR).model_dump(), **change})
    problems = reference_problems(record, REFS)
    assert [(p.field, p.kind) for p in problems] == [(field, kind)]
    assert problems[0].message


def test_good_references() -> None:
    assert reference_problems(EquipmentRecord.model_validate({**ELEVATOR, "gateway_id": "gw-1"}), REFS) == []


def test_changes_lists_old_and_new() -> None:
    before = {"status": "in_use", "next_inspection_on": date(2026, 1, 1), "rated": {"a": 1.0}}
    after = {"status": "suspended", "next_inspection_on": date(2026, 1, 1), "rated": {"a": 2.0}}
    assert changes(before, after) == {"status": ["in_use", "suspended"], "rated": [{"a": 1.0}, {"a": 2.0}]}


def test_validate_rows_reports_line_field_and_reason() -> None:
    row = {"code": ELEVATOR["code"], "unit_uscc": USCC, "banner_code": "150102", "rated_speed": "1.75",
           "rated_load": "1000", "floors": "18.0"}
    rows = [(2, row), (3, {**row, "code": "311015123201500002", "rated_speed": "fast"}),
            (4, {**row}),  # same code as line 2
            (5, {**row, "code": "311015123201500003", "banner_code": "150202"})]
    good, errors, total = validate_rows(rows, REFS)
    assert [line for line, _ in good] == [2]
    assert total == 3
    assert [(e.line, e.field) for e in errors] == [(3, "rated.rated_speed"), (4, "code"), (5, "banner_code")]
    assert "line 2" in errors[1].message
