"""Registry records and their rules (pure): one definition used by the API, the importer and the tests.

Validation happens in two steps, both pure:

1. `EquipmentRecord` / `UnitRecord` / `GatewayRecord` check a record on its own (code structure,
   USCC check character, rated parameters per category, date order). Failures are pydantic
   `ValidationError`s whose ``loc`` names the field and whose message says why.
2. `reference_problems` checks a record against what the registry holds (`References`: divisions,
   the caller's jurisdiction, units, gateways, codes taken) and returns every `Problem` found.

Nothing here reads the database or the clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from safewatch.registry.categories import BY_CODE, VARIETIES, category_of
from safewatch.registry.codes import (
    CodeError,
    normalize_registration_no,
    parse_equipment_code,
    validate_rescue_code,
    validate_uscc,
)

GATEWAY_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DIVISION_CODE = r"^\d{6}$"
_GATEWAY_ID = re.compile(GATEWAY_ID)


class EquipmentStatus(StrEnum):
    """使用状态: in use, suspended (停用), scrapped (报废), cancelled (注销)."""

    IN_USE = "in_use"
    SUSPENDED = "suspended"
    SCRAPPED = "scrapped"
    CANCELLED = "cancelled"


RETIRED_STATUSES = (EquipmentStatus.SCRAPPED, EquipmentStatus.CANCELLED)

_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


def _not_a_number(v: Any) -> Any:
    # pydantic would read 20260301 or "0" as seconds since 1970: a number is refused, not guessed at.
    if isinstance(v, int | float) or (isinstance(v, str) and _NUMBER.match(v)):
        raise ValueError(f"{v!r} is a number; give the date as text in ISO 8601, e.g. 2026-03-01 "
                         "(with a time: 2026-03-01T08:00:00+08:00)")
    return v


# Dates and times as the registry and the API take them: ISO 8601 text (or a date object), never a number.
IsoDate = Annotated[date, BeforeValidator(_not_a_number)]
IsoDateTime = Annotated[datetime, BeforeValidator(_not_a_number)]

Text100 = Annotated[str, Field(min_length=1, max_length=100)]
Text200 = Annotated[str, Field(min_length=1, max_length=200)]


def _checked_uscc(v: str) -> str:
    try:
        return validate_uscc(v)
    except CodeError as exc:
        raise ValueError(str(exc)) from None  # pydantic reports a ValueError against the field


# A 统一社会信用代码 whose GB 32100 check character is right (the field gives its length and description).
Uscc = Annotated[str, AfterValidator(_checked_uscc)]


class StrictModel(BaseModel):
    """Unknown fields are refused by name (a misspelt column never silently vanishes); no NUL in text."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        # PostgreSQL text cannot hold NUL: refuse it here, naming the field, rather than fail in the database.
        if isinstance(data, Mapping):
            for key, value in data.items():
                if isinstance(value, str) and "\x00" in value:
                    raise _fail((str(key),), "contains a NUL character", None)
        return data


# --- rated parameters per category (units in the field descriptions; ranges are sanity bounds only) ---

class BoilerRated(StrictModel):
    """锅炉: rated pressure and evaporation (or thermal power), safety-valve set pressures."""

    rated_pressure: float = Field(gt=0, le=40, description="MPa")
    rated_evaporation: float | None = Field(None, gt=0, le=5000, description="t/h (steam boilers)")
    rated_power: float | None = Field(None, gt=0, le=2000, description="MW (hot-water boilers)")
    rated_temperature: float | None = Field(None, gt=0, le=700, description="°C outlet")
    safety_valve_low: float = Field(gt=0, le=50, description="MPa, the lower set pressure")
    safety_valve_high: float = Field(gt=0, le=50, description="MPa, the higher set pressure")

    @model_validator(mode="after")
    def _consistent(self) -> BoilerRated:
        if self.rated_evaporation is None and self.rated_power is None:
            raise ValueError("a boiler needs rated_evaporation (t/h) or rated_power (MW)")
        if self.safety_valve_low > self.safety_valve_high:
            raise ValueError(f"safety_valve_low {self.safety_valve_low} MPa is above safety_valve_high "
                             f"{self.safety_valve_high} MPa; swap them")
        return self


class VesselRated(StrictModel):
    """压力容器: design pressure and temperature, volume, safety-valve set pressure."""

    design_pressure: float = Field(gt=0, le=1000, description="MPa")
    design_temperature: float = Field(ge=-273, le=1200, description="°C")
    volume: float = Field(gt=0, le=100_000, description="m³")
    safety_valve_set: float | None = Field(None, gt=0, le=1000, description="MPa")


class ElevatorRated(StrictModel):
    """电梯: rated load and speed, floors (escalators and moving walks carry no rated load)."""

    rated_speed: float = Field(gt=0, le=20, description="m/s")
    rated_load: float | None = Field(None, gt=0, le=100_000, description="kg")
    floors: int | None = Field(None, ge=1, le=300, description="floors served (层)")


RATED_MODELS: dict[str, type[StrictModel]] = {"1000": BoilerRated, "2000": VesselRated, "3000": ElevatorRated}
RATED_KEYS: tuple[str, ...] = tuple(dict.fromkeys(k for m in RATED_MODELS.values() for k in m.model_fields))


class RatedError(ValueError):
    """A rated parameter is missing, unknown or out of range; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"rated.{key}: {message}" if key else f"rated: {message}")
        self.key, self.message = key, message


def validate_rated(variety: str, rated: Mapping[str, Any]) -> dict[str, float]:
    """The rated parameters of a ``variety`` checked, absent keys dropped; raises `RatedError` naming the key."""
    category = category_of(variety)
    model = RATED_MODELS[category]
    try:
        checked = model.model_validate(dict(rated))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise RatedError(key, f"{first['msg']} (category {category} takes {', '.join(model.model_fields)})"
                         ) from None
    values = checked.model_dump(exclude_none=True)
    # Escalators and moving walks (33xx) carry no rated load; every other elevator does.
    if category == "3000" and "rated_load" not in values and not variety.startswith("33"):
        raise RatedError("rated_load", "required (kg) for elevators other than escalators and moving walks")
    return {k: float(v) for k, v in values.items()}


def _fail(loc: tuple[str, ...], message: str, value: Any, *, title: str = "EquipmentRecord") -> ValidationError:
    """A validation error located at ``loc`` (a model validator otherwise reports at the record's root)."""
    return ValidationError.from_exception_data(
        title, [InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=value)])


# --- equipment ---

class EquipmentRecord(StrictModel):
    """One equipment as registered: everything checkable without the database."""

    code: str = Field(min_length=18, max_length=20, description="设备代码 (18/19 characters) or 注册代码 (20 digits)")
    variety: str | None = Field(None, description="TSG class or variety code, e.g. 3110; default: from the code")
    category: str | None = Field(None, description="1000, 2000 or 3000; derived from variety")
    registration_no: str | None = Field(None, max_length=32, description="使用登记证编号 or 注册代码")
    unit_uscc: Uscc = Field(min_length=18, max_length=18, description="the user unit's 统一社会信用代码")
    banner_code: str = Field(pattern=DIVISION_CODE, description="the banner (county-level division) it stands in")
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    address: Text200 | None = None
    manufacturer: Text100 | None = None
    model: Text100 | None = None
    manufactured_on: IsoDate | None = None
    commissioned_on: IsoDate | None = None
    rated: dict[str, float] = Field(default_factory=dict, max_length=16)
    status: EquipmentStatus = EquipmentStatus.IN_USE
    last_inspection_on: IsoDate | None = None
    next_inspection_on: IsoDate | None = None
    gateway_id: str | None = Field(None, pattern=GATEWAY_ID)
    rescue_code: str | None = Field(None, description="6-digit 电梯救援识别码 (elevators)")

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        try:
            return parse_equipment_code(v).code
        except CodeError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("rescue_code")
    @classmethod
    def _rescue(cls, v: str | None) -> str | None:
        try:
            return None if v is None else validate_rescue_code(v)
        except CodeError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _consistent(self) -> EquipmentRecord:
        code = parse_equipment_code(self.code)
        variety = (self.variety or code.variety).upper()
        if variety not in VARIETIES:
            if self.variety:
                raise _fail(("variety",), f"{variety!r} is not a TSG class or variety code (e.g. 1100, 2150, 3110)",
                            self.variety)
            raise _fail(("variety",), f"the code's first four characters {code.variety!r} are not a TSG class or "
                        "variety code; set variety explicitly (e.g. 3110)", None)
        category = category_of(variety)
        if category not in RATED_MODELS:
            raise _fail(("variety",), f"{variety} ({BY_CODE[variety].name}) is outside the categories served: "
                        f"{', '.join(RATED_MODELS)}", variety)
        if variety[0] != code.variety[0]:
            raise _fail(("variety",), f"{variety} is category {category} but code {self.code} is category "
                        f"{code.variety[0]}000", variety)
        if self.category is not None and self.category != category:
            raise _fail(("category",), f"{self.category} disagrees with variety {variety} (category {category})",
                        self.category)
        self.variety, self.category = variety, category
        if self.registration_no:
            try:
                self.registration_no = normalize_registration_no(self.registration_no, category=category)
            except CodeError as exc:
                raise _fail(("registration_no",), str(exc), self.registration_no) from None
        try:
            self.rated = validate_rated(variety, self.rated)
        except RatedError as exc:
            loc = ("rated", exc.key) if exc.key else ("rated",)
            raise _fail(loc, exc.message, self.rated.get(exc.key) if exc.key else None) from None
        if self.rescue_code and category != "3000":
            raise _fail(("rescue_code",), "is for elevators only (category 3000)", self.rescue_code)
        if self.manufactured_on and self.commissioned_on and self.commissioned_on < self.manufactured_on:
            raise _fail(("commissioned_on",), f"{self.commissioned_on} is before manufactured_on "
                        f"{self.manufactured_on}", str(self.commissioned_on))
        if self.last_inspection_on and self.next_inspection_on and self.next_inspection_on < self.last_inspection_on:
            raise _fail(("next_inspection_on",), f"{self.next_inspection_on} is before last_inspection_on "
                        f"{self.last_inspection_on}", str(self.next_inspection_on))
        if (self.lat is None) != (self.lon is None):
            raise _fail(("lat" if self.lat is None else "lon",), "give both lat and lon, or neither", None)
        return self


# Fields a PATCH may change (the code is the identity; retiring has its own action).
EQUIPMENT_MUTABLE: tuple[str, ...] = tuple(f for f in EquipmentRecord.model_fields if f not in ("code",))


# --- units and gateways ---

class UnitRecord(StrictModel):
    """使用单位: name, USCC with its GB 32100 check character, division, address, safety manager, phone."""

    uscc: Uscc = Field(min_length=18, max_length=18, description="统一社会信用代码")
    name: Text200
    division_code: str = Field(pattern=DIVISION_CODE)
    address: Text200 | None = None
    safety_manager: Text100 | None = Field(None, description="安全管理员")
    phone: str | None = Field(None, pattern=r"^\+?[0-9][0-9 ()-]{4,24}$")


class GatewayRecord(StrictModel):
    """A device gateway: its id (the MQTT username and topic segment) and the league it reports under."""

    id: str = Field(pattern=GATEWAY_ID, description="letters, digits, '_', '.', '-'; at most 64")
    league_code: str = Field(pattern=DIVISION_CODE)
    name: Text100 | None = None


# --- checks against what the registry holds ---

@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a record cannot be stored: the field, a stable kind, and a message saying why."""

    field: str
    kind: str  # "unknown", "forbidden", "duplicate", "retired", "mismatch"
    message: str


@dataclass(frozen=True, slots=True)
class DivisionRef:
    level: str
    league_code: str | None


@dataclass(frozen=True, slots=True)
class References:
    """What a record is checked against; the API fills it for one record, the importer for a whole file."""

    divisions: Mapping[str, DivisionRef]
    in_scope: Callable[[str], bool]
    units: Mapping[str, bool]  # USCC → retired
    gateways: Mapping[str, str]  # live gateway id → league code
    codes_taken: Container[str]


def reference_problems(record: EquipmentRecord, refs: References, *, check_code: bool = True) -> list[Problem]:
    """Every way ``record`` disagrees with the registry (empty: it may be stored)."""
    problems: list[Problem] = []
    division = refs.divisions.get(record.banner_code)
    if division is None:
        problems.append(Problem("banner_code", "unknown", f"division {record.banner_code} is not in the registry's "
                                "divisions; load it with `safewatch load-divisions` or fix the code"))
    elif division.level != "banner":
        problems.append(Problem("banner_code", "mismatch", f"division {record.banner_code} is a {division.level}; "
                                "equipment stands in a banner (county-level division)"))
    elif not refs.in_scope(record.banner_code):
        problems.append(Problem("banner_code", "forbidden", f"banner {record.banner_code} is outside your "
                                "jurisdiction"))
    retired = refs.units.get(record.unit_uscc)
    if retired is None:
        problems.append(Problem("unit_uscc", "unknown", f"no user unit with USCC {record.unit_uscc}; "
                                "register it first (POST /api/v1/units)"))
    elif retired:
        problems.append(Problem("unit_uscc", "retired", f"user unit {record.unit_uscc} is retired"))
    if record.gateway_id is not None:
        league = refs.gateways.get(record.gateway_id)
        if league is None:
            problems.append(Problem("gateway_id", "unknown", f"no live gateway {record.gateway_id}; register it "
                                    "first (POST /api/v1/gateways)"))
        elif division is not None and division.league_code != league:
            problems.append(Problem("gateway_id", "mismatch", f"gateway {record.gateway_id} reports under league "
                                    f"{league} but banner {record.banner_code} is in league {division.league_code}"))
    if check_code and record.code in refs.codes_taken:
        problems.append(Problem("code", "duplicate", f"equipment {record.code} is already registered"))
    return problems


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The audit entry of an update: ``{field: [old, new]}`` for each field whose value changed."""
    out: dict[str, list[Any]] = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if _plain(old) != _plain(new):
            out[key] = [_plain(old), _plain(new)]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def valid_gateway_id(value: str) -> bool:
    return bool(_GATEWAY_ID.match(value))
