"""Who hears of an alert: the divisions for each notified level, and which contacts want it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from alerts.escalation.policy import SEVERITIES, Level


@dataclass(frozen=True, slots=True)
class Place:
    """Where the alerting equipment stands: its banner, league and region codes."""

    division_code: str
    league_code: str
    region_code: str


def divisions_to_notify(levels: Iterable[Level], place: Place,
                        notify_parent: frozenset[str] = frozenset()) -> list[tuple[Level, str]]:
    """(level, division code) pairs to notify, lowest first, each division once.

    A banner in ``notify_parent`` (满洲里 150781, 二连浩特 152501: county-level cities with some
    prefecture-level powers) brings its parent league in with it.
    """
    by_level = {Level.BANNER: place.division_code, Level.LEAGUE: place.league_code, Level.REGION: place.region_code}
    out: list[tuple[Level, str]] = []
    seen: set[str] = set()
    for level in sorted(set(levels), key=lambda lv: lv.rank):
        codes = [by_level[level]]
        if level is Level.BANNER and place.division_code in notify_parent:
            codes.append(place.league_code)
        for code in codes:
            if code not in seen:
                seen.add(code)
                out.append((level, code))
    return out


@dataclass(frozen=True, slots=True)
class ContactView:
    """A contact's filters, as stored in ``contacts``."""

    on_duty: bool
    categories: frozenset[str] | None  # None: every category
    min_severity: str


def wants(contact: ContactView, *, severity: str, category: str) -> bool:
    """Is this contact to be told of an alert of ``severity`` on equipment of ``category``?"""
    if not contact.on_duty:
        return False
    if contact.categories is not None and category not in contact.categories:
        return False
    return SEVERITIES.index(severity) <= SEVERITIES.index(contact.min_severity)


def wants_system_alert(contact: ContactView, *, severity: str) -> bool:
    """Is this contact to be told of a system alert (schema 041) of ``severity``?

    A system alert concerns every category (a stopped rollup job blanks every chart), so the contact's
    category filter does not apply; being on duty and the severity threshold do.
    """
    return contact.on_duty and SEVERITIES.index(severity) <= SEVERITIES.index(contact.min_severity)
