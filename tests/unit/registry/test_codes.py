"""Identifier rules (pure): USCC check characters, equipment code forms, registration numbers."""

from __future__ import annotations

import pytest

from safewatch.registry.codes import (
    CodeError,
    normalize_registration_no,
    parse_equipment_code,
    uscc_check_char,
    validate_rescue_code,
    validate_uscc,
)


@pytest.mark.parametrize("code", ["91110000600037341L", "91110000600037341l", " 91110000600037341L "])
def test_valid_uscc(code: str) -> None:
    assert validate_uscc(code) == "91110000600037341L"


def test_check_character_is_computed_per_gb32100() -> None:
    assert uscc_check_char("91110000600037341") == "L"
    assert uscc_check_char("91150102000000001") == validate_uscc("91150102000000001" + uscc_check_char(
        "91150102000000001"))[17]


@pytest.mark.parametrize(("code", "why"), [
    ("91110000600037341M", "check character 'M'"),  # wrong check character
    ("91110000600037342L", "check character"),  # one digit changed
    ("9111000060003734L", "18 characters"),  # too short
    ("91110000600037341LL", "18 characters"),  # too long
    ("9111000060003734IL", "no I, O, S, V, Z"),  # letter outside the alphabet
    ("", "18 characters"),
])
def test_bad_uscc_says_why(code: str, why: str) -> None:
    with pytest.raises(CodeError, match=why):
        validate_uscc(code)


@pytest.mark.parametrize(("code", "form", "variety", "year"), [
    ("311015123201500001", "device18", "3110", 2015),  # 设备代码: 品种 + maker + year + serial
    ("3110150102201500001", "device19", "3110", 2015),  # office-assigned: division in 5-10
    ("31106401052014080025", "registration20", "3110", 2014),  # legacy 注册代码 (DOMAIN.md example)
    ("23T015123201800A01", "device18", "23T0", 2018),  # letters in variety and serial
    ("110015123201A00001", None, None, None),  # a letter in the year: refused
])
def test_equipment_code_forms(code: str, form: str | None, variety: str | None, year: int | None) -> None:
    if form is None:
        with pytest.raises(CodeError):
            parse_equipment_code(code)
        return
    parsed = parse_equipment_code(code)
    assert (parsed.form, parsed.variety, parsed.year) == (form, variety, year)


@pytest.mark.parametrize(("code", "why"), [
    ("411015123201500001", "category 4000"),  # lifting machinery: not served
    ("311015123189900001", "year 1899"),  # impossible year
    ("31106401052014130025", "month 13"),  # legacy code with month 13
    ("3110-15123-2015-00001", "neither"),  # punctuation
    ("31101512320150000", "neither"),  # 17 characters
    ("0110151232015000001", "neither"),  # leading zero is no category
])
def test_bad_equipment_codes_say_why(code: str, why: str) -> None:
    with pytest.raises(CodeError, match=why):
        parse_equipment_code(code)


@pytest.mark.parametrize(("number", "expected"), [
    ("梯11蒙A00001(24)", "梯11蒙A00001(24)"),
    ("梯11蒙A00001（24）", "梯11蒙A00001(24)"),  # full-width brackets as typed on Chinese keyboards
    ("容15宁A1234(19)", "容15宁A1234(19)"),  # another province
    ("31106401052014080025", "31106401052014080025"),  # old certificates carry the 注册代码
])
def test_registration_numbers(number: str, expected: str) -> None:
    assert normalize_registration_no(number, category="3000" if number[0] in "梯3" else "2000") == expected


@pytest.mark.parametrize(("number", "category", "why"), [
    ("梯11蒙A00001(24)", "1000", "category 3000"),  # an elevator certificate on a boiler
    ("电11蒙A00001(24)", None, "neither"),  # no such category character
    ("31106401052014080025", "2000", "category 3000"),
])
def test_bad_registration_numbers(number: str, category: str | None, why: str) -> None:
    with pytest.raises(CodeError, match=why):
        normalize_registration_no(number, category=category)


def test_rescue_code() -> None:
    assert validate_rescue_code("012345") == "012345"
    with pytest.raises(CodeError, match="6 digits"):
        validate_rescue_code("12345")
