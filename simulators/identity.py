"""Who a simulator connects as (pure): client ids, and whether it owns its gateways' presence.

A gateway's presence is its retained ``…/status``: ``online`` sent on every (re)connection, and the
last will ``offline`` the broker publishes when the connection is lost. Exactly one connection per
gateway may own it, the one that stands for the gateway (the demo's simulator, or a fleet run on its
own). It connects with the gateway's stable client id (``sim-<gateway>``): a restart takes over the
old session at once instead of leaving it to die of its keep-alive and publish ``offline`` later.

A side tool (``simulate --fault …`` or ``replay`` beside a running fleet) publishes as the gateway but
does not stand for it. It connects with a client id of its own run (``<tool>-<run>-<gateway>``), so the
broker never drops the owner's connection for it, and it sets no last will and sends no status: its
own crash or kill says nothing about the gateway.
"""

from __future__ import annotations

from enum import StrEnum

#: Client-id prefix of the connection that owns a gateway's presence (stable across runs).
OWNER_PREFIX = "sim"


class Presence(StrEnum):
    """Whether a simulator run owns its gateways' presence (``--presence``)."""

    AUTO = "auto"  # own, unless the run injects explicit faults (a side tool beside a running fleet)
    OWN = "own"
    NONE = "none"


def owns_presence(choice: Presence, *, explicit_faults: bool) -> bool:
    """Whether the run sets last wills and sends ``online``: ``auto`` treats a run with ``--fault`` or
    ``--gateway-fault`` as a side tool, since that is how one injects a fault beside a running demo."""
    if choice is Presence.AUTO:
        return not explicit_faults
    return choice is Presence.OWN


def client_prefix(*, tool: str, run: str, owner: bool) -> str:
    """The prefix of a run's client ids (``<prefix>-<gateway>``): the owner's stable one, else the run's own."""
    return OWNER_PREFIX if owner else f"{tool}-{run}"
