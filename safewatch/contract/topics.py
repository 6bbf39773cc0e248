"""MQTT topics: ``se/v1/{league_code}/{gateway_id}/{telemetry|event|status}``.

The league segment only routes shards (alert workers subscribe per league); an equipment's
jurisdiction always comes from the registry, never from the topic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from safewatch.contract.errors import BadTopic

ROOT = "se"
VERSION = "v1"

_LEAGUE = re.compile(r"^\d{6}$")
# Gateway ids are also MQTT client ids and usernames: keep them to a safe, short alphabet.
_GATEWAY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Kind(StrEnum):
    """What a topic carries."""

    TELEMETRY = "telemetry"
    EVENT = "event"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed device topic."""

    league: str
    gateway_id: str
    kind: Kind

    def __post_init__(self) -> None:
        if not _LEAGUE.match(self.league):
            raise BadTopic(f"league segment {self.league!r} is not a 6-digit division code")
        if not _GATEWAY.match(self.gateway_id):
            raise BadTopic(f"gateway id {self.gateway_id!r} must be 1-64 of A-Z a-z 0-9 _ . -")

    def __str__(self) -> str:
        return f"{ROOT}/{VERSION}/{self.league}/{self.gateway_id}/{self.kind}"


def build_topic(league: str, gateway_id: str, kind: Kind | str) -> str:
    """The topic a gateway publishes ``kind`` messages on."""
    return str(Topic(league, gateway_id, Kind(kind)))


# Topics are few (three a gateway) and every message names one: parse each once. Topic is frozen, and
# a bad topic raises, which is never cached.
@lru_cache(maxsize=65_536)
def parse_topic(topic: str) -> Topic:
    """Parse a device topic, or raise `BadTopic`."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != ROOT or parts[1] != VERSION:
        raise BadTopic(f"topic {topic!r} is not {ROOT}/{VERSION}/{{league}}/{{gateway}}/{{kind}}")
    try:
        kind = Kind(parts[4])
    except ValueError:
        raise BadTopic(f"topic {topic!r} ends in {parts[4]!r}; expected one of {[k.value for k in Kind]}") from None
    return Topic(parts[2], parts[3], kind)


def device_filter(league: str = "+", kind: Kind | str = "+") -> str:
    """A subscription filter over device topics, optionally one league and one kind."""
    return f"{ROOT}/{VERSION}/{league}/+/{kind}"


def shared_filter(group: str, topic_filter: str) -> str:
    """An MQTT v5 shared subscription: the broker splits matching messages across the group."""
    return f"$share/{group}/{topic_filter}"


def alert_topic(division_code: str) -> str:
    """Where alert notifications for one division are published (``se/v1/alerts/{division}``)."""
    return f"{ROOT}/{VERSION}/alerts/{division_code}"
