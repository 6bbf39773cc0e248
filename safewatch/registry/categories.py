"""The TSG special-equipment catalogue (特种设备目录, 2014 edition) for the three categories covered.

Codes are 4 characters stored as text (some contain letters, e.g. 特种气瓶 23T0). A code ending in
``000`` is a 种类 (category), ``x00`` a 类别 (class), anything else a 品种 (variety). Equipment is
registered under a class or a variety; its category is the first character followed by ``000``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One catalogue code with its Chinese and English names."""

    code: str
    name: str
    name_en: str

    @property
    def category(self) -> str:
        return self.code[0] + "000"

    @property
    def is_category(self) -> bool:
        return self.code.endswith("000")


CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry("1000", "锅炉", "boiler"),
    CatalogueEntry("1100", "承压蒸汽锅炉", "pressure-bearing steam boiler"),
    CatalogueEntry("1200", "承压热水锅炉", "pressure-bearing hot-water boiler"),
    CatalogueEntry("1300", "有机热载体锅炉", "organic heat-carrier boiler"),
    CatalogueEntry("1310", "有机热载体气相炉", "organic heat-carrier vapour-phase boiler"),
    CatalogueEntry("1320", "有机热载体液相炉", "organic heat-carrier liquid-phase boiler"),
    CatalogueEntry("2000", "压力容器", "pressure vessel"),
    CatalogueEntry("2100", "固定式压力容器", "stationary pressure vessel"),
    CatalogueEntry("2110", "超高压容器", "ultra-high-pressure vessel"),
    CatalogueEntry("2130", "第三类压力容器", "class III pressure vessel"),
    CatalogueEntry("2150", "第二类压力容器", "class II pressure vessel"),
    CatalogueEntry("2170", "第一类压力容器", "class I pressure vessel"),
    CatalogueEntry("2200", "移动式压力容器", "mobile pressure vessel"),
    CatalogueEntry("2210", "铁路罐车", "rail tank car"),
    CatalogueEntry("2220", "汽车罐车", "road tank vehicle"),
    CatalogueEntry("2230", "长管拖车", "tube trailer"),
    CatalogueEntry("2240", "罐式集装箱", "tank container"),
    CatalogueEntry("2250", "管束式集装箱", "tube-bundle container"),
    CatalogueEntry("2300", "气瓶", "gas cylinder"),
    CatalogueEntry("2310", "无缝气瓶", "seamless cylinder"),
    CatalogueEntry("2320", "焊接气瓶", "welded cylinder"),
    CatalogueEntry("23T0", "特种气瓶", "special cylinder"),
    CatalogueEntry("2400", "氧舱", "oxygen chamber"),
    CatalogueEntry("2410", "医用氧舱", "medical oxygen chamber"),
    CatalogueEntry("2420", "高气压舱", "hyperbaric chamber"),
    CatalogueEntry("3000", "电梯", "elevator"),
    CatalogueEntry("3100", "曳引与强制驱动电梯", "traction and positive-drive elevator"),
    CatalogueEntry("3110", "曳引驱动乘客电梯", "traction passenger elevator"),
    CatalogueEntry("3120", "曳引驱动载货电梯", "traction goods elevator"),
    CatalogueEntry("3130", "强制驱动载货电梯", "positive-drive goods elevator"),
    CatalogueEntry("3200", "液压驱动电梯", "hydraulic elevator"),
    CatalogueEntry("3210", "液压乘客电梯", "hydraulic passenger elevator"),
    CatalogueEntry("3220", "液压载货电梯", "hydraulic goods elevator"),
    CatalogueEntry("3300", "自动扶梯与自动人行道", "escalator and moving walk"),
    CatalogueEntry("3310", "自动扶梯", "escalator"),
    CatalogueEntry("3320", "自动人行道", "moving walk"),
    CatalogueEntry("3400", "其他类型电梯", "other elevator"),
    CatalogueEntry("3410", "防爆电梯", "explosion-proof elevator"),
    CatalogueEntry("3420", "消防员电梯", "firefighter elevator"),
    CatalogueEntry("3430", "杂物电梯", "dumbwaiter"),
)
BY_CODE: dict[str, CatalogueEntry] = {e.code: e for e in CATALOGUE}
CATEGORIES: tuple[str, ...] = tuple(e.code for e in CATALOGUE if e.is_category)
# What equipment may be registered under: every class and variety, never a bare category.
VARIETIES: tuple[str, ...] = tuple(e.code for e in CATALOGUE if not e.is_category)


def category_of(variety: str) -> str:
    """The 种类 code of a class or variety code: ``3110`` → ``3000``."""
    return variety[0] + "000"
