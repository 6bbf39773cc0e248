"""Identifier checks for the registry (pure). Structure is validated, not exact tables (DOMAIN.md).

- 统一社会信用代码 (USCC, GB 32100-2015): 18 characters, check character over the first 17.
- 设备代码: 18 characters (品种 4 + manufacturer 5 + year 4 + serial 5) or the 19-character
  office-assigned form; legacy 注册代码: 20 digits (category 4 + division 6 + YYYYMM + sequence 4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC = re.compile(r"^[0-9A-HJ-NP-RT-UW-Y]{18}$")
_VARIETY = re.compile(r"^[1-9][0-9A-Z]{3}$")
_CODE18 = re.compile(r"^([1-9][0-9A-Z]{3})([0-9A-Z]{5})(\d{4})([0-9A-Z]{5})$")
_CODE19 = re.compile(r"^([1-9][0-9A-Z]{3})(\d{6})(\d{4})([0-9A-Z]{5})$")
_CODE20 = re.compile(r"^([1-9]\d{3})(\d{6})(\d{4})(\d{2})(\d{4})$")
# 使用登记证编号: category character, 2-digit 品种 feature, province abbreviation, plate letter, serial, (yy).
_CERT = re.compile(r"^([锅容瓶梯起索游管车])(\d{2})([\u4e00-\u9fff])([A-Z])(\d{4,6})\((\d{2})\)$")
_CERT_CATEGORY = {"锅": "1", "容": "2", "瓶": "2", "梯": "3"}
_RESCUE = re.compile(r"^\d{6}$")
MIN_YEAR, MAX_YEAR = 1950, 2100


class CodeError(ValueError):
    """An identifier that fails its structural check; the message says which part and why."""


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters."""
    weights = [pow(3, i, 31) for i in range(17)]
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, weights, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def validate_uscc(code: str) -> str:
    """Return the USCC upper-cased, or raise `CodeError` saying what is wrong."""
    code = code.strip().upper()
    if not _USCC.match(code):
        raise CodeError(f"USCC {code!r} must be 18 characters of {USCC_ALPHABET} (no I, O, S, V, Z)")
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        raise CodeError(f"USCC {code!r} has check character {code[17]!r}; GB 32100 gives {expected!r}")
    return code


@dataclass(frozen=True, slots=True)
class EquipmentCode:
    """A parsed equipment code of any accepted form."""

    code: str
    form: str  # "device18", "device19" or "registration20"
    variety: str
    year: int


def parse_equipment_code(code: str) -> EquipmentCode:
    """Parse a 设备代码 (18/19) or legacy 注册代码 (20), or raise `CodeError`."""
    code = code.strip().upper()
    if m := _CODE18.match(code):
        form, variety, year = "device18", m[1], int(m[3])
    elif m := _CODE19.match(code):
        form, variety, year = "device19", m[1], int(m[3])
    elif m := _CODE20.match(code):
        form, variety, year = "registration20", m[1], int(m[3])
        if not 1 <= int(m[4]) <= 12:
            raise CodeError(f"注册代码 {code!r}: month {m[4]} (characters 15-16) is not 01-12")
    else:
        raise CodeError(f"equipment code {code!r} is neither an 18/19-character 设备代码 "
                        "nor a 20-digit 注册代码")
    if variety[0] not in "123":
        raise CodeError(f"equipment code {code!r}: category {variety[0]}000 is not boiler (1), "
                        "pressure vessel (2) or elevator (3)")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise CodeError(f"equipment code {code!r}: year {year} is outside {MIN_YEAR}-{MAX_YEAR}")
    return EquipmentCode(code, form, variety, year)


def is_registration_certificate(number: str) -> bool:
    """True for the 使用登记证编号 form ``梯11蒙A00001(24)`` or a 20-digit 注册代码."""
    try:
        normalize_registration_no(number)
    except CodeError:
        return False
    return True


def normalize_registration_no(number: str, *, category: str | None = None) -> str:
    """A 使用登记证编号 (``梯11蒙A00001(24)``, full-width brackets accepted) or a 20-digit 注册代码.

    With ``category`` (``3000`` …) the certificate's category character must agree with it.
    Returns the number with ASCII brackets, or raises `CodeError` saying what is wrong.
    """
    number = number.strip().replace("（", "(").replace("）", ")").upper()
    if _CODE20.match(number):
        if category is not None and number[0] != category[0]:
            raise CodeError(f"registration code {number!r} starts with category {number[0]}000, "
                            f"but the equipment is {category}")
        return number
    m = _CERT.match(number)
    if not m:
        raise CodeError(f"registration number {number!r} is neither a certificate number like 梯11蒙A00001(24) "
                        "nor a 20-digit 注册代码")
    expected = _CERT_CATEGORY.get(m[1])
    if category is not None and expected is not None and expected != category[0]:
        raise CodeError(f"registration number {number!r}: character {m[1]!r} is for category {expected}000, "
                        f"but the equipment is {category}")
    return number


def validate_rescue_code(code: str) -> str:
    """The 6-digit 电梯救援识别码 on an elevator car plate, or raise `CodeError`."""
    code = code.strip()
    if not _RESCUE.match(code):
        raise CodeError(f"rescue code {code!r} must be 6 digits (电梯救援识别码)")
    return code
