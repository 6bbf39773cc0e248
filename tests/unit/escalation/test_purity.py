"""The escalation core stays pure: no database, network or clock-reading imports; its public names are pinned."""

from __future__ import annotations

import ast
from pathlib import Path

import alerts.escalation

CORE = Path(alerts.escalation.__file__).parent
ALLOWED = {"__future__", "collections", "dataclasses", "datetime", "enum", "typing", "alerts"}


def test_the_core_imports_nothing_that_does_io():
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] in ALLOWED, f"{path.name} imports {name}"
                if name.startswith("alerts"):
                    assert name.startswith("alerts.escalation"), f"{path.name} imports {name}"


def test_public_names():
    assert alerts.escalation.__all__ == [
        "AlertView", "ContactView", "Decision", "EscalationPolicy", "Level", "NextTimer", "Place", "Placement",
        "PlacementKind", "PolicyError", "Timer", "TimerKind", "World", "divisions_to_notify", "group_key",
        "next_escalation", "place_notification", "retry_delay", "select_policy", "time_at_levels", "wants",
        "wants_system_alert",
    ]
