"""What gateways may report: equipment categories, metrics and event types.

Metric ids are stable small integers: the database stores them instead of names, so an id is
never reused or renumbered. Add new metrics at the end with a new id.

Valid ranges are *physical* plausibility bounds (a reading outside is a broken sensor or a unit
error and goes to dead-letter), not alarm limits: alarm limits belong to the alert rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class Category(StrEnum):
    """Equipment 种类 per the TSG special-equipment catalogue (特种设备目录); values are TSG codes."""

    BOILER = "1000"  # 锅炉
    PRESSURE_VESSEL = "2000"  # 压力容器
    ELEVATOR = "3000"  # 电梯

    @classmethod
    def of_variety(cls, variety: str) -> Category:
        """The category of a 4-character 品种/类别 code such as ``3110`` or ``23T0``."""
        head = variety[:1]
        for category in cls:
            if category.value[0] == head:
                return category
        raise ValueError(f"variety {variety!r} is not a boiler (1xxx), pressure vessel (2xxx) or elevator (3xxx)")


class Severity(StrEnum):
    """Alert severity, most severe first."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric a gateway may report."""

    id: int
    key: str
    unit: str
    category: Category
    lo: float
    hi: float
    name_zh: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One discrete event type (a trapped passenger, a safety valve lifting ...)."""

    type: str
    category: Category
    severity: Severity
    name_zh: str
    fault_code: str | None = None  # the common elevator-platform fault number (GB/T 24476 style)
    latched: bool = False  # a person must reset it even after the device reports it cleared


_B, _V, _E = Category.BOILER, Category.PRESSURE_VESSEL, Category.ELEVATOR

METRICS: tuple[MetricSpec, ...] = (
    # Boilers (TSG 11-2020 monitored quantities; see DOMAIN.md).
    MetricSpec(1, "drum_pressure", "MPa", _B, 0.0, 30.0, "汽包压力", "steam drum pressure (gauge)"),
    MetricSpec(2, "drum_level", "mm", _B, -500.0, 500.0, "汽包水位", "drum water level from normal water line"),
    MetricSpec(3, "steam_temp", "°C", _B, -50.0, 650.0, "蒸汽温度"),
    MetricSpec(4, "steam_flow", "t/h", _B, 0.0, 2000.0, "蒸汽流量"),
    MetricSpec(5, "feedwater_temp", "°C", _B, -50.0, 350.0, "给水温度"),
    MetricSpec(6, "feedwater_pressure", "MPa", _B, 0.0, 35.0, "给水压力"),
    MetricSpec(7, "furnace_temp", "°C", _B, -50.0, 1800.0, "炉膛温度"),
    MetricSpec(8, "furnace_pressure", "kPa", _B, -20.0, 20.0, "炉膛压力"),
    MetricSpec(9, "flue_gas_temp", "°C", _B, -50.0, 600.0, "排烟温度"),
    MetricSpec(10, "flue_gas_o2", "%", _B, 0.0, 21.0, "烟气含氧量"),
    MetricSpec(11, "burner_on", "bool", _B, 0.0, 1.0, "燃烧器状态"),
    MetricSpec(12, "outlet_water_temp", "°C", _B, -50.0, 250.0, "出水温度", "hot-water boilers"),
    MetricSpec(13, "return_water_temp", "°C", _B, -50.0, 250.0, "回水温度", "hot-water boilers"),
    # Pressure vessels (TSG 21-2016).
    MetricSpec(20, "vessel_pressure", "MPa", _V, 0.0, 100.0, "容器压力"),
    MetricSpec(21, "vessel_temp", "°C", _V, -60.0, 600.0, "容器温度"),
    MetricSpec(22, "compressor_on", "bool", _V, 0.0, 1.0, "压缩机状态"),
    # Elevators (GB/T 24476 status set, plus speed for over-speed).
    MetricSpec(40, "service_mode", "enum", _E, 0.0, 7.0, "服务模式",
               "0 out of service, 1 normal, 2 inspection, 3 fire return, 4 firefighter, "
               "5 emergency power, 6 earthquake, 7 unknown"),
    MetricSpec(41, "car_moving", "bool", _E, 0.0, 1.0, "轿厢运行"),
    MetricSpec(42, "direction", "enum", _E, 0.0, 2.0, "运行方向", "0 none, 1 up, 2 down"),
    MetricSpec(43, "door_zone", "bool", _E, 0.0, 1.0, "平层区"),
    MetricSpec(44, "floor", "floor", _E, -10.0, 200.0, "楼层"),
    MetricSpec(45, "door_locked", "bool", _E, 0.0, 1.0, "门锁闭合"),
    MetricSpec(46, "passenger_present", "bool", _E, 0.0, 1.0, "有人"),
    MetricSpec(47, "mains_power", "bool", _E, 0.0, 1.0, "主电源"),
    MetricSpec(48, "speed", "m/s", _E, 0.0, 20.0, "运行速度", "absolute car speed"),
    MetricSpec(49, "load", "%", _E, 0.0, 200.0, "载重", "share of rated load"),
    MetricSpec(50, "run_hours", "h", _E, 0.0, 1e6, "运行时间", "counter"),
    MetricSpec(51, "trips", "count", _E, 0.0, 1e9, "运行次数", "counter"),
    MetricSpec(52, "door_cycles", "count", _E, 0.0, 1e9, "开门次数", "counter"),
)

EVENT_TYPES: tuple[EventSpec, ...] = (
    # Elevator faults, common platform numbering (DOMAIN.md "Elevators").
    EventSpec("safety_circuit_open", _E, Severity.MAJOR, "运行中安全回路断路", "01"),
    EventSpec("door_close_fault", _E, Severity.MINOR, "关门故障", "02"),
    EventSpec("door_open_fault", _E, Severity.MINOR, "开门故障", "03"),
    EventSpec("stopped_outside_door_zone", _E, Severity.MAJOR, "门区外停梯", "04"),
    EventSpec("unintended_car_movement", _E, Severity.CRITICAL, "开门走车", "05", latched=True),
    EventSpec("motor_runtime_limit", _E, Severity.MAJOR, "电动机运转时间限制器动作", "06"),
    EventSpec("floor_position_lost", _E, Severity.MINOR, "楼层位置丢失", "07"),
    EventSpec("restart_prevented", _E, Severity.MAJOR, "防止电梯再启动", "08"),
    EventSpec("overshoot_top", _E, Severity.CRITICAL, "冲顶", "09", latched=True),
    EventSpec("overshoot_bottom", _E, Severity.CRITICAL, "蹲底", "10", latched=True),
    EventSpec("passenger_trapped", _E, Severity.CRITICAL, "困人", "11", latched=True),
    EventSpec("overspeed", _E, Severity.CRITICAL, "超速", None, latched=True),
    # Boilers.
    EventSpec("low_water_cutoff", _B, Severity.CRITICAL, "极低水位联锁停炉", latched=True),
    EventSpec("overpressure_interlock", _B, Severity.CRITICAL, "超压联锁", latched=True),
    EventSpec("safety_valve_lift", _B, Severity.MAJOR, "安全阀起跳"),
    EventSpec("flame_failure", _B, Severity.MAJOR, "熄火保护"),
    EventSpec("high_water_level", _B, Severity.MINOR, "高水位报警"),
    # Hot-water boilers: the over-temperature limiter cuts the burner (outlet ≥ 20 °C below saturation).
    EventSpec("over_temperature_cutoff", _B, Severity.CRITICAL, "超温联锁", latched=True),
    # Pressure vessels.
    EventSpec("vessel_safety_valve_lift", _V, Severity.MAJOR, "安全阀起跳"),
    EventSpec("vessel_overpressure", _V, Severity.CRITICAL, "超压"),
)

METRICS_BY_KEY: MappingProxyType[str, MetricSpec] = MappingProxyType({m.key: m for m in METRICS})
METRICS_BY_ID: MappingProxyType[int, MetricSpec] = MappingProxyType({m.id: m for m in METRICS})
EVENTS_BY_TYPE: MappingProxyType[str, EventSpec] = MappingProxyType({e.type: e for e in EVENT_TYPES})


def metrics_of(category: Category) -> tuple[MetricSpec, ...]:
    """The metrics an equipment of ``category`` may report."""
    return tuple(m for m in METRICS if m.category is category)
