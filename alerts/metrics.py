"""Prometheus metrics of the alert worker."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from alerts.engine.lifecycle import AlarmState
from alerts.engine.rules import RuleKind
from safewatch.contract import Severity


class AlertMetrics:
    """The alert worker's metrics in one registry (a private one in tests)."""

    def __init__(self, registry: CollectorRegistry, leagues: list[str] | None = None) -> None:
        self.evaluated = Counter("safewatch_alerts_readings_evaluated_total", "Readings evaluated against rules",
                                 registry=registry)
        self.raised = Counter("safewatch_alerts_raised_total", "Alert raises (new or re-triggered)",
                              ["severity", "rule_kind", "league"], registry=registry)
        self.cleared = Counter("safewatch_alerts_cleared_total", "Alert conditions returned to normal",
                               registry=registry)
        self.latency = Histogram("safewatch_alerts_raise_latency_seconds",
                                 "Receipt of the batch holding the offending reading to alert committed",
                                 ["severity"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0), registry=registry)
        self.active = Gauge("safewatch_alerts_active", "Open alerts of this worker's leagues (set at housekeeping)",
                            ["severity", "state"], registry=registry)
        self.active_labels = [(str(sev), str(state)) for sev in Severity for state in AlarmState
                              if state is not AlarmState.NORMAL]
        for severity, state in self.active_labels:
            self.active.labels(severity=severity, state=state)
        for sev in Severity:
            self.latency.labels(severity=str(sev))
            for kind in RuleKind:
                for league in leagues or ():
                    self.raised.labels(severity=str(sev), rule_kind=str(kind), league=league)
