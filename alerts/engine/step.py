"""One step of the engine: readings of one equipment in, effects out (pure, event time).

`step` advances an `EquipmentState` by a batch of readings of one equipment and returns the new
state and the `Effect`s (raise / clear) to carry out. Everything it decides on is in its arguments:
the reading timestamps are the only clock. `check_silence` is the same for the passage of event
time without readings (``now_ms`` is the shard's event-time watermark, passed in explicitly);
`status_effects` turns a gateway's online/offline status into alerts; `event_effect` a discrete event.

The state is a frozen value except ``detector``, the anomaly detector, which `step` advances in place:
copying its ~10 KB of tables on every reading would dominate the cost. The shell therefore runs a
batch through `step` once and keeps the result, rather than re-running a batch after a failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from itertools import groupby
from operator import itemgetter
from typing import Any

from alerts.engine.anomaly import AnomalyConfig, EquipmentDetector
from alerts.engine.rules import Change, Condition, Direction, Rule, RuleKind, evaluate, resolve_limits
from safewatch.contract import EVENTS_BY_TYPE, METRICS, Severity

CHATTER_WINDOW_MS = 60_000
CHATTER_TRANSITIONS = 3  # ISA-18.2 / EEMUA 191: 3 or more transitions a minute is chattering (DOMAIN.md)
CHATTER_HOLD_S = 60.0  # while chattering, a clear waits this long (an automatic off-delay)
WINDOW_BUCKETS = 32  # rate / flatline windows keep at most this many buckets (+ 1 anchor) per rule


@dataclass(frozen=True, slots=True)
class RaiseAlert:
    """Open (or re-trigger) the alert of (equipment, rule)."""

    equipment_id: int
    rule_key: str
    severity: Severity
    metric: str | None
    value: float | None
    limit: float | None
    ts_ms: int
    message: str
    latched: bool = False
    kind: RuleKind = RuleKind.THRESHOLD
    suppressed_by: str | None = None  # a cause's rule key: the alert is suppressed by design
    chattering: bool = False


@dataclass(frozen=True, slots=True)
class ClearAlert:
    """The condition of (equipment, rule) has gone."""

    equipment_id: int
    rule_key: str
    metric: str | None
    value: float | None
    ts_ms: int
    chattering: bool = False


Effect = RaiseAlert | ClearAlert


@dataclass(frozen=True, slots=True)
class Bucket:
    """Readings of one metric in one slice of a rate / flatline window."""

    start_ms: int
    lo: float
    hi: float
    last: float
    last_ms: int


@dataclass(frozen=True, slots=True)
class EquipmentState:
    """Everything the engine remembers of one equipment; bounded whatever the number of readings."""

    conditions: Mapping[str, Condition] = field(default_factory=dict)
    windows: Mapping[str, tuple[Bucket, ...]] = field(default_factory=dict)  # by rule key
    changes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # recent raise/clear times by rule
    suppressed: frozenset[str] = frozenset()  # rule keys raised while covered by their cause
    last_seen_ms: int | None = None
    detector: EquipmentDetector | None = None


def anomaly_metrics(rules: Iterable[Rule]) -> tuple[str, ...]:
    """The metrics an equipment's anomaly detector watches for its anomaly rules, in name order."""
    return tuple(sorted({r.metric for r in rules if r.kind is RuleKind.ANOMALY and not r.metric.startswith("_")}))


def new_detector(rules: Iterable[Rule], config: AnomalyConfig) -> EquipmentDetector | None:
    """The anomaly detector an equipment needs for its anomaly rules (None when it has none)."""
    metrics = anomaly_metrics(rules)
    return EquipmentDetector(metrics, config) if metrics else None


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}
_NORMAL = Condition()


# ---------------------------------------------------------------------------------- windows

def push_window(buckets: tuple[Bucket, ...], value: float, ts_ms: int, window_ms: int) -> tuple[Bucket, ...]:
    """Add a reading to a window of buckets and drop what is older than the window's anchor."""
    width = max(1, window_ms // WINDOW_BUCKETS)
    # Runs for every reading of a windowed rule: tuples are built directly, min/max written out.
    if buckets and ts_ms - buckets[-1].start_ms < width:
        b = buckets[-1]
        items = (*buckets[:-1], Bucket(b.start_ms, value if value < b.lo else b.lo,
                                       value if value > b.hi else b.hi, value, ts_ms))
    else:
        items = (*buckets, Bucket(ts_ms, value, value, value, ts_ms))
    # Keep one bucket that ends at or before the window start: it anchors the rate and coverage.
    horizon = ts_ms - window_ms
    drop = 0
    while len(items) - drop > 1 and items[drop + 1].last_ms <= horizon:
        drop += 1
    return items[drop:] if drop else items


def window_rate_per_min(buckets: tuple[Bucket, ...], window_ms: int) -> float | None:
    """Change per minute from the anchor to the newest reading; None until the window is covered."""
    if len(buckets) < 2:
        return None
    anchor, newest = buckets[0], buckets[-1]
    if anchor.last_ms > newest.last_ms - window_ms:
        return None
    return (newest.last - anchor.last) * 60_000 / (newest.last_ms - anchor.last_ms)


def window_span(buckets: tuple[Bucket, ...], window_ms: int) -> float | None:
    """max − min over the window; None until readings cover the whole window."""
    if len(buckets) < 2:
        return None
    anchor, newest = buckets[0], buckets[-1]
    if anchor.last_ms > newest.last_ms - window_ms:
        return None
    lo = hi = anchor.last
    for b in buckets[1:]:
        if b.lo < lo:
            lo = b.lo
        if b.hi > hi:
            hi = b.hi
    return hi - lo


# ---------------------------------------------------------------------------------- chattering

def recent_changes(times: tuple[int, ...], ts_ms: int) -> tuple[int, ...]:
    """The change times still inside the chatter window at ``ts_ms`` (at most a handful are kept)."""
    return tuple(t for t in times if ts_ms - t < CHATTER_WINDOW_MS)[-2 * CHATTER_TRANSITIONS:]


def is_chattering(times: tuple[int, ...], ts_ms: int) -> bool:
    """Three or more raise/clear transitions of one rule within a minute of event time."""
    return len(recent_changes(times, ts_ms)) >= CHATTER_TRANSITIONS


# ---------------------------------------------------------------------------------- step

class _Run:
    """The mutable scratch of one `step` call (local to it; the result is a new frozen state)."""

    def __init__(self, equipment_id: int, state: EquipmentState, rules: Iterable[Rule] | RuleTable) -> None:
        self.equipment_id = equipment_id
        self.conditions = dict(state.conditions)
        self.windows = dict(state.windows)
        self.changes = dict(state.changes)
        self.suppressed = set(state.suppressed)
        self.effects: list[Effect] = []
        # cause rule key → the rules it covers
        self.covers = rules.covers if isinstance(rules, RuleTable) else covers_of(rules)
        self.sensor_faults = not SENSOR_FAULT_KEYS.isdisjoint(self.conditions)

    def advance(self, rule: Rule, limit: float, value: float, ts_ms: int, *, metric: str | None,
                reported: float | None, message: str | None = None, shown_limit: float | None = None) -> None:
        """Evaluate the observed ``value``; the alert's text is built only when something changes."""
        before = self.conditions.get(rule.key) or _NORMAL
        past = self.changes.get(rule.key)
        times = recent_changes(past, ts_ms) if past else ()
        chatter = len(times) >= CHATTER_TRANSITIONS
        off_delay = max(rule.off_delay_s, CHATTER_HOLD_S) if chatter else None
        after, change = evaluate(rule, limit, before, value, ts_ms, off_delay_s=off_delay)
        if after is not before:
            self.conditions[rule.key] = after
        if change is None:
            return
        if message is None:
            message = _message(rule, metric or "", value, limit, reported if reported is not None else value)
        times = (*times, ts_ms)
        self.changes[rule.key] = times
        chatter = len(times) >= CHATTER_TRANSITIONS
        if change is Change.RAISE:
            cause = next((k for k in rule.covered_by if self._active(k)), None)
            if cause is not None:
                self.suppressed.add(rule.key)
            self.effects.append(RaiseAlert(self.equipment_id, rule.key, rule.severity, metric, reported,
                                           limit if shown_limit is None else shown_limit, ts_ms, message,
                                           kind=rule.kind, suppressed_by=cause, chattering=chatter))
        else:
            self.suppressed.discard(rule.key)
            self.effects.append(ClearAlert(self.equipment_id, rule.key, metric, reported, ts_ms, chatter))
            self._release_children(rule.key, ts_ms)

    def _active(self, key: str) -> bool:
        cond = self.conditions.get(key)
        return cond is not None and cond.active

    def _release_children(self, cause_key: str, ts_ms: int) -> None:
        """A cause has cleared: children it suppressed that are still active are annunciated now."""
        for child in self.covers.get(cause_key, ()):
            if child.key in self.suppressed and self._active(child.key):
                if any(self._active(k) for k in child.covered_by):
                    continue  # still covered by another cause
                self.suppressed.discard(child.key)
                self.effects.append(RaiseAlert(self.equipment_id, child.key, child.severity, child.metric, None, None,
                                               ts_ms, f"{child.message} (no longer covered by {cause_key})",
                                               kind=child.kind))

    def state(self, last_seen_ms: int | None, detector: EquipmentDetector | None) -> EquipmentState:
        return EquipmentState(self.conditions, self.windows, self.changes, frozenset(self.suppressed), last_seen_ms,
                              detector)


def _message(rule: Rule, metric: str, observed: float, limit: float, reading: float) -> str:
    if rule.kind is RuleKind.THRESHOLD:
        return f"{rule.message}: {metric}={reading:g} (limit {limit:g})"
    if rule.kind is RuleKind.RATE_OF_CHANGE:
        rate = observed if rule.direction is Direction.HIGH else -observed
        return f"{rule.message}: {metric} changing {rate:+.3g}/min (limit {limit:g}/min)"
    if rule.kind is RuleKind.FLATLINE:
        return f"{rule.message}: {metric} moved {observed:.3g} in {rule.window_s:g} s (expected > {limit:g})"
    if rule.kind is RuleKind.OUT_OF_RANGE:
        return f"{rule.message}: {metric}={reading:g}"
    if rule.kind is RuleKind.ANOMALY:
        return f"{rule.message}: {metric} anomaly score {observed:.2f}"
    return rule.message


class Check(IntEnum):
    """How `step_merged` decides a reading-driven rule's common case (compiled once per rule)."""

    ABOVE = 0  # threshold, high: breached when value > limit
    BELOW = 1  # threshold, low: breached when value < limit
    OUTSIDE = 2  # out of range, high: breached when value is outside [low, limit]
    INSIDE = 3  # out of range, low: breached when value is inside [low, limit]
    WINDOW = 4  # rate of change or flatline: decided on the rule's window


def check_of(rule: Rule) -> Check:
    """The `Check` of a threshold, out-of-range, rate or flatline rule."""
    high = rule.direction is Direction.HIGH
    if rule.kind is RuleKind.THRESHOLD:
        return Check.ABOVE if high else Check.BELOW
    if rule.kind is RuleKind.OUT_OF_RANGE:
        return Check.OUTSIDE if high else Check.INSIDE
    if rule.kind is RuleKind.RATE_OF_CHANGE or rule.kind is RuleKind.FLATLINE:
        return Check.WINDOW
    raise ValueError(f"rule {rule.key!r} of kind {rule.kind} is not driven by a metric's readings")


# A reading-driven rule as `step_merged` runs it: the rule, its limits for this equipment, its key, its check.
MetricRule = tuple[Rule, float, float | None, str, Check]


@dataclass(frozen=True, slots=True)
class RuleTable:
    """One equipment's rules with their limits resolved, by what triggers them (built once, reused)."""

    rules: tuple[Rule, ...]
    by_metric: Mapping[str, tuple[MetricRule, ...]]
    anomaly: tuple[tuple[Rule, float], ...]
    silence: tuple[tuple[Rule, float], ...]
    covers: Mapping[str, list[Rule]]  # cause rule key → the rules it covers
    checked: tuple[tuple[str, tuple[MetricRule, ...]], ...] = ()  # ``by_metric`` in metric name order


def covers_of(rules: Iterable[Rule]) -> dict[str, list[Rule]]:
    """Cause rule key → the rules whose alert it suppresses by design."""
    covers: dict[str, list[Rule]] = {}
    for rule in rules:
        for cause in rule.covered_by:
            covers.setdefault(cause, []).append(rule)
    return covers


def compile_rules(rules: Iterable[Rule], rated: Mapping[str, float]) -> RuleTable:
    """Resolve the limits of ``rules`` against ``rated``; rules whose rated parameter is missing are left out."""
    rules = tuple(rules)
    by_metric: dict[str, list[MetricRule]] = {}
    anomaly: list[tuple[Rule, float]] = []
    silence: list[tuple[Rule, float]] = []
    for rule in rules:
        limits = resolve_limits(rule, rated)
        if limits is None:
            continue
        if rule.kind is RuleKind.ANOMALY:
            anomaly.append((rule, limits[0]))
        elif rule.kind is RuleKind.NO_DATA:
            silence.append((rule, limits[0]))
        elif rule.kind is not RuleKind.EVENT and rule.kind is not RuleKind.INSPECTION:
            by_metric.setdefault(rule.metric, []).append((rule, limits[0], limits[1], rule.key, check_of(rule)))
    for entries in by_metric.values():  # causes first, so a child breaching on the same reading is covered
        entries.sort(key=lambda e: _SEVERITY_RANK[e[0].severity])
    checked = tuple((m, tuple(by_metric[m])) for m in sorted(by_metric))
    return RuleTable(rules, dict(checked), tuple(anomaly), tuple(silence), covers_of(rules), checked)


def step(equipment_id: int, rated: Mapping[str, float], rules: Sequence[Rule] | RuleTable, state: EquipmentState,
         readings: Iterable[tuple[str, int, float]]) -> tuple[EquipmentState, list[Effect]]:
    """Evaluate ``readings`` (metric, ts_ms, value) of one equipment, in event-time order, against ``rules``.

    ``rules`` are this equipment's rules (defaults with its overrides applied), or their `compile_rules`
    table. Returns the new state and the effects to carry out, in the order they happened.
    """
    table = rules if isinstance(rules, RuleTable) else compile_rules(rules, rated)
    instants: list[tuple[int, dict[str, float]]] = []
    for ts_ms, group in groupby(sorted(readings, key=lambda r: r[1]), key=lambda r: r[1]):
        instants.append((ts_ms, {metric: value for metric, _, value in group}))
    return step_instants(equipment_id, table, state, instants)


Instants = list[tuple[int, Mapping[str, float]]]


def merge_instants(instants: Iterable[tuple[int, Mapping[str, float]]]) -> Instants:
    """Readings grouped by instant, in time order; several entries at one instant make one set of
    values, the later winning (a stable sort)."""
    if isinstance(instants, list) and len(instants) == 1:  # the common case: one entry an equipment a batch
        return instants
    merged: Instants = []
    for ts_ms, group in groupby(sorted(instants, key=itemgetter(0)), key=itemgetter(0)):
        same = [v for _, v in group]
        merged.append((ts_ms, same[0] if len(same) == 1 else {k: v for entry in same for k, v in entry.items()}))
    return merged


def anomaly_requests(table: RuleTable, metrics: Sequence[str],
                     merged: Instants) -> list[tuple[int, dict[str, float]]]:
    """What the anomaly detector is given for each of ``merged`` (index, readings it watches), as
    `step_merged` gives it: only for an equipment with anomaly rules, only instants with such a metric.
    ``metrics`` are the detector's, in name order (`anomaly_metrics`)."""
    if not table.anomaly:
        return []
    out = []
    for i, (_, values) in enumerate(merged):
        known = {m: values[m] for m in metrics if m in values}
        if known:
            out.append((i, known))
    return out


def step_instants(equipment_id: int, table: RuleTable, state: EquipmentState,
                  instants: Iterable[tuple[int, Mapping[str, float]]]) -> tuple[EquipmentState, list[Effect]]:
    """`step` over readings already grouped by instant: (ts_ms, metric → value), as messages carry them.

    Instants are taken in time order (of two values of one metric at one instant the later wins);
    within an instant, metrics in name order, so the outcome never depends on the order of keys in a
    gateway's JSON.
    """
    return step_merged(equipment_id, table, state, merge_instants(instants))


def step_merged(equipment_id: int, table: RuleTable, state: EquipmentState, merged: Instants,
                scores: Mapping[int, Mapping[str, float]] | None = None) -> tuple[EquipmentState, list[Effect]]:
    """`step_instants` over `merge_instants` output.

    ``scores``, when given, are the anomaly scores of the instants (by index in ``merged``) computed
    beforehand from `anomaly_requests` by a `FleetDetector`, which scores a whole shard at once; the
    state then holds no detector. Without it, the state's own detector scores them here.
    """
    detector = state.detector
    if scores is None:
        # The state's own detector sees what a FleetDetector would; its scores never depend on the rules.
        scores = {} if detector is None else {
            i: detector.update(known, merged[i][0] / 1000)
            for i, known in anomaly_requests(table, detector.metrics, merged)}
    if len(merged) == 1:
        ts_ms, values = merged[0]
        quiet = step_quiet(table, state, ts_ms, values, scores.get(0))
        if quiet is not None:
            return quiet, []
    return step_general(equipment_id, table, state, merged, scores)


def step_quiet(table: RuleTable, state: EquipmentState, ts_ms: int, values: Mapping[str, float],
               found: Mapping[str, float] | None) -> EquipmentState | None:
    """One instant of one equipment when it changes nothing but times and windows; else None.

    Every reading's common case: each condition the instant touches is settled (normal and in order;
    a running on-delay ends at a reading that does not breach) and stays so, and no silence or
    sensor fault is active. The state is then what
    `step_general` would return, with no effects, built without its scratch (`_Run`), its sort of the
    metrics, or its text. Anything else returns None before deciding anything, and the caller runs
    `step_general` from the same ``state`` (pure: nothing here has been changed).
    """
    conditions = state.conditions
    if not SENSOR_FAULT_KEYS.isdisjoint(conditions):
        return None
    new_conditions = dict(conditions)
    windows: dict[str, tuple[Bucket, ...]] | None = None
    normal = Condition(False, None, None, ts_ms)
    for metric, checks in table.checked:
        value = values.get(metric)
        if value is None:
            continue
        for rule, limit, low, key, check in checks:
            cond = conditions.get(key)
            if cond is not None and (cond.active or (cond.last_ts_ms is not None and ts_ms < cond.last_ts_ms)):
                return None  # not settled (`_normal_in_order`): `evaluate` decides
            if check is Check.ABOVE:
                if value > limit:
                    return None
            elif check is Check.BELOW:
                if value < limit:
                    return None
            elif check is Check.WINDOW:
                if windows is None:
                    windows = dict(state.windows)
                window_ms = int(rule.window_s * 1000)
                buckets = push_window(windows.get(key, ()), value, ts_ms, window_ms)
                windows[key] = buckets
                if not _low_span_reaches(rule, buckets, window_ms, limit):
                    observed, breached = _window_observation(rule, limit, buckets, window_ms)
                    if observed is None:
                        continue  # not covered yet: nothing observed, the condition keeps its time
                    if breached:
                        return None
            else:
                inside = low is not None and low <= value <= limit
                if inside if check is Check.INSIDE else not inside:
                    return None
            new_conditions[key] = normal
    if found is not None:
        for rule, limit in table.anomaly:
            score = found.get(rule.metric)
            if score is None:
                continue
            if (not _normal_in_order(conditions.get(rule.key), ts_ms)
                    or (score > limit if rule.direction is Direction.HIGH else score < limit)):
                return None
            new_conditions[rule.key] = normal
    for rule, _ in table.silence:
        cond = conditions.get(rule.key)
        if cond is not None and cond.active:
            return None
    last_seen = state.last_seen_ms
    return EquipmentState(new_conditions, state.windows if windows is None else windows, state.changes,
                          state.suppressed, ts_ms if last_seen is None or ts_ms > last_seen else last_seen,
                          state.detector)


def step_general(equipment_id: int, table: RuleTable, state: EquipmentState, merged: Instants,
                 scores: Mapping[int, Mapping[str, float]]) -> tuple[EquipmentState, list[Effect]]:
    """`step_merged` for any case, with the anomaly scores given: the reference `step_quiet` must agree with."""
    detector = state.detector
    run = _Run(equipment_id, state, table)
    by_metric, anomaly, silence = table.by_metric, table.anomaly, table.silence
    conditions = run.conditions
    last_seen = state.last_seen_ms
    sensor_faults = run.sensor_faults
    for index, (ts_ms, values) in enumerate(merged):
        # Conditions are immutable: every rule that stays normal at this instant shares this one.
        normal = Condition(False, None, None, ts_ms)
        for metric in sorted(values):
            checks = by_metric.get(metric)
            value = values[metric]
            if checks is not None:
                for rule, limit, low, key, check in checks:
                    # The common case, decided here as `evaluate` would: a normal condition that stays
                    # normal only moves its time (`_normal_in_order`, inlined: this runs per reading and rule).
                    cond = conditions.get(key)
                    settled = cond is None or (not cond.active and (cond.last_ts_ms is None
                                                                     or ts_ms >= cond.last_ts_ms))
                    if check is Check.WINDOW:
                        _observe_window(run, rule, limit, metric, value, ts_ms, settled, normal)
                        continue
                    if settled:
                        if check is Check.ABOVE:
                            breached = value > limit
                        elif check is Check.BELOW:
                            breached = value < limit
                        else:
                            inside = low is not None and low <= value <= limit
                            breached = not inside if check is Check.OUTSIDE else inside
                        if not breached:
                            conditions[key] = normal
                            continue
                    _observe(run, rule, limit, low, metric, value, ts_ms)
            if sensor_faults:
                fault = conditions.get(sensor_fault_key(metric))
                if fault is not None and fault.active:  # a valid reading again: the sensor is back
                    conditions[sensor_fault_key(metric)] = Condition(False, None, None, ts_ms)
                    run.effects.append(ClearAlert(equipment_id, sensor_fault_key(metric), metric, value, ts_ms))
        found = scores.get(index)
        if found is not None:
            for rule, limit in anomaly:
                if rule.metric in found:
                    score = found[rule.metric]
                    # The same shortcut as above, for a quiet score.
                    if (_normal_in_order(conditions.get(rule.key), ts_ms)
                            and not (score > limit if rule.direction is Direction.HIGH else score < limit)):
                        conditions[rule.key] = normal
                        continue
                    run.advance(rule, limit, score, ts_ms, metric=rule.metric, reported=score)
        for rule, limit in silence:  # a reading ends any silence
            cond = conditions.get(rule.key)
            if cond is not None and cond.active:
                run.advance(rule, limit, 0.0, max(ts_ms, cond.last_ts_ms or ts_ms), metric=None, reported=0.0,
                            message=rule.message)
        last_seen = ts_ms if last_seen is None else max(last_seen, ts_ms)
    return run.state(last_seen, detector), run.effects


def _normal_in_order(cond: Condition | None, ts_ms: int) -> bool:
    """Whether ``cond`` is normal and ``ts_ms`` not older than it: then a reading that does not breach
    leaves it normal with only its time moved, exactly as `evaluate` would."""
    return cond is None or (not cond.active and (cond.last_ts_ms is None or ts_ms >= cond.last_ts_ms))


def _observe(run: _Run, rule: Rule, limit: float, low: float | None, metric: str, value: float, ts_ms: int) -> None:
    """Reduce one reading to a threshold or out-of-range rule's observed value and advance its condition."""
    if rule.kind is RuleKind.OUT_OF_RANGE:
        assert low is not None
        outside = 0.0 if low <= value <= limit else 1.0
        run.advance(rule, 0.5, outside, ts_ms, metric=metric, reported=value,
                    shown_limit=limit if value > limit else low)
        return
    run.advance(rule, limit, value, ts_ms, metric=metric, reported=value)


def _observe_window(run: _Run, rule: Rule, limit: float, metric: str, value: float, ts_ms: int, settled: bool,
                    normal: Condition) -> None:
    """Push a reading into a rate or flatline rule's window and advance its condition by what the window
    shows (nothing until the window is covered).

    A ``settled`` condition (normal and in order, `_normal_in_order`) that does not breach only moves
    its time to ``normal``'s, exactly as `evaluate` would decide; this is every reading's common case,
    decided without building the alert's text. A flatline's span is bounded below by its newest
    bucket and its anchor alone: when that bound already reaches a low limit, the other buckets need
    not be read.
    """
    window_ms = int(rule.window_s * 1000)
    buckets = push_window(run.windows.get(rule.key, ()), value, ts_ms, window_ms)
    run.windows[rule.key] = buckets
    if settled and _low_span_reaches(rule, buckets, window_ms, limit):
        run.conditions[rule.key] = normal
        return
    observed, breached = _window_observation(rule, limit, buckets, window_ms)
    if observed is None:
        return  # the window is not covered yet: nothing observed
    if settled and not breached:
        run.conditions[rule.key] = normal
        return
    run.advance(rule, limit, observed, ts_ms, metric=metric, reported=value)


def _window_observation(rule: Rule, limit: float, buckets: tuple[Bucket, ...],
                        window_ms: int) -> tuple[float | None, bool]:
    """What a rate or flatline rule observes on its window (None until the window is covered), and
    whether that breaches its limit."""
    high = rule.direction is Direction.HIGH
    if rule.kind is RuleKind.RATE_OF_CHANGE:
        rate = window_rate_per_min(buckets, window_ms)
        # A "low" rate rule watches falls: the fall is observed as a positive number, and a rate rule
        # always breaches above its limit (see evaluate).
        observed = None if rate is None else (rate if high else -rate)
        return observed, observed is not None and observed > limit
    span = window_span(buckets, window_ms)
    return span, span is not None and (span > limit if high else span < limit)


def _low_span_reaches(rule: Rule, buckets: tuple[Bucket, ...], window_ms: int, limit: float) -> bool:
    """A low flatline rule whose window already spans its limit by the newest bucket and anchor alone:
    it does not breach, and the other buckets need not be read."""
    return (rule.kind is RuleKind.FLATLINE and rule.direction is Direction.LOW
            and _span_reaches(buckets, window_ms, limit))


def _span_reaches(buckets: tuple[Bucket, ...], window_ms: int, limit: float) -> bool:
    """Whether the window is covered and its newest bucket and anchor alone already span ``limit``
    (then the whole window does: its span can only be larger)."""
    if len(buckets) < 2:
        return False
    anchor, newest = buckets[0], buckets[-1]
    if anchor.last_ms > newest.last_ms - window_ms:
        return False
    lo = newest.lo if newest.lo < anchor.last else anchor.last
    hi = newest.hi if newest.hi > anchor.last else anchor.last
    return hi - lo >= limit


def check_silence(equipment_id: int, rated: Mapping[str, float], rules: Sequence[Rule] | RuleTable,
                  state: EquipmentState, now_ms: int) -> tuple[EquipmentState, list[Effect]]:
    """Raise no-data alerts for an equipment silent longer than its rules allow at event time ``now_ms``.

    ``rules`` are the equipment's rules or their `compile_rules` table. An equipment never heard from
    has no baseline and raises nothing (the gateway status covers it). A silence rule whose condition
    is plainly normal (no delay running) and stays so is left as it is: a shard judges every
    equipment each 10 s of event time, and a state rebuilt for each would cost more than the rest of
    the judging. Then ``state`` itself is returned.
    """
    last_seen = state.last_seen_ms
    if last_seen is None:
        return state, []
    table = rules if isinstance(rules, RuleTable) else compile_rules(rules, rated)
    silent_s = (now_ms - last_seen) / 1000
    due = [(rule, limit) for rule, limit in table.silence
           if rule.metric == "readings" and not (silent_s <= limit and _quiet(state.conditions.get(rule.key), now_ms))]
    if not due:
        return state, []
    run = _Run(equipment_id, state, table)
    for rule, limit in due:
        run.advance(rule, limit, silent_s, now_ms, metric=None, reported=silent_s,
                    message=f"{rule.message}: nothing for {silent_s:.0f} s (expected every {limit:g} s at most)")
    return run.state(last_seen, state.detector), run.effects


def _quiet(cond: Condition | None, ts_ms: int) -> bool:
    """Whether ``cond`` is normal with no on- or off-delay running and ``ts_ms`` not older than it: a
    value that does not breach would then change nothing but its time."""
    return _normal_in_order(cond, ts_ms) and (cond is None or (cond.pending_since_ms is None
                                                               and cond.clearing_since_ms is None))


def status_effects(equipment_id: int, rules: Sequence[Rule], state: EquipmentState, *, online: bool,
                   ts_ms: int) -> tuple[EquipmentState, list[Effect]]:
    """A gateway's status (its last will says offline at once) as the no-data alert of each equipment on it."""
    run = _Run(equipment_id, state, rules)
    for rule in rules:
        if rule.kind is RuleKind.NO_DATA and rule.metric == "gateway_status":
            cond = run.conditions.get(rule.key) or Condition()
            run.advance(rule, 0.5, 0.0 if online else 1.0, max(ts_ms, cond.last_ts_ms or ts_ms), metric=None,
                        reported=None, message=rule.message)
    return run.state(state.last_seen_ms, state.detector), run.effects


def event_rule_key(event_type: str) -> str:
    """The rule key under which a discrete event's alert is kept."""
    return f"event.{event_type}"


def event_effect(equipment_id: int, event_type: str, active: bool, ts_ms: int) -> Effect:
    """A discrete event becomes an alert directly, with the catalogue's severity and latching."""
    spec = EVENTS_BY_TYPE[event_type]
    key = event_rule_key(event_type)
    if not active:
        return ClearAlert(equipment_id, key, None, None, ts_ms)
    code = f" (fault {spec.fault_code})" if spec.fault_code else ""
    return RaiseAlert(equipment_id, key, spec.severity, None, None, None, ts_ms,
                      f"{spec.name_zh} {event_type}{code}", latched=spec.latched, kind=RuleKind.EVENT)


def event_effects(equipment_id: int, rules: Sequence[Rule], state: EquipmentState, *, event_type: str,
                  active: bool, ts_ms: int) -> tuple[EquipmentState, list[Effect]]:
    """`event_effect`, keeping the event's condition so it can cover its children (over-speed, low-water cut-off).

    A repeated report of an event already in that condition changes nothing.
    """
    key = event_rule_key(event_type)
    before = state.conditions.get(key) or Condition()
    if before.active == active:
        return state, []
    run = _Run(equipment_id, state, rules)
    run.conditions[key] = Condition(active, None, None, ts_ms)
    run.effects.append(event_effect(equipment_id, event_type, active, ts_ms))
    if not active:
        run._release_children(key, ts_ms)
    return run.state(state.last_seen_ms, state.detector), run.effects


def sensor_fault_key(metric: str) -> str:
    """The rule key of a metric's physically impossible readings (the contract's valid range)."""
    return f"sensor.{metric}.out_of_range"


SENSOR_FAULT_KEYS = frozenset(sensor_fault_key(m.key) for m in METRICS)


def range_fault_effects(equipment_id: int, state: EquipmentState, *, metric: str, ts_ms: int,
                        detail: str) -> tuple[EquipmentState, list[Effect]]:
    """A reading the contract rejected as physically impossible: the sensor (or its scaling) is broken.

    The alert clears at the next valid reading of that metric (see `step`).
    """
    key = sensor_fault_key(metric)
    cond = state.conditions.get(key)
    if cond is not None and cond.active:
        return state, []
    conditions = {**state.conditions, key: Condition(True, None, None, ts_ms)}
    effect = RaiseAlert(equipment_id, key, Severity.MINOR, metric, None, None, ts_ms, f"sensor fault: {detail}",
                        kind=RuleKind.OUT_OF_RANGE)
    return replace(state, conditions=conditions), [effect]


# ---------------------------------------------------------------------------------- persistence

def state_to_plain(state: EquipmentState) -> dict[str, Any]:
    """The whole state as JSON-compatible data (the worker saves it on a graceful stop)."""
    return {
        "version": 1,
        "conditions": {k: [c.active, c.pending_since_ms, c.clearing_since_ms, c.last_ts_ms]
                       for k, c in state.conditions.items()},
        "windows": {k: [[b.start_ms, b.lo, b.hi, b.last, b.last_ms] for b in w] for k, w in state.windows.items()},
        "changes": {k: list(v) for k, v in state.changes.items()},
        "suppressed": sorted(state.suppressed),
        "last_seen_ms": state.last_seen_ms,
        "detector": state.detector.to_state() if state.detector is not None else None,
    }


def state_from_plain(plain: Mapping[str, Any]) -> EquipmentState:
    """Rebuild a state saved by `state_to_plain`; it continues exactly where that one stopped."""
    if plain.get("version") != 1:
        raise ValueError(f"unsupported engine state version {plain.get('version')!r}")
    detector = plain.get("detector")
    return EquipmentState(
        conditions={k: Condition(bool(a), p, c, t) for k, (a, p, c, t) in plain["conditions"].items()},
        windows={k: tuple(Bucket(int(s), float(lo), float(hi), float(last), int(ms)) for s, lo, hi, last, ms in w)
                 for k, w in plain["windows"].items()},
        changes={k: tuple(int(t) for t in v) for k, v in plain["changes"].items()},
        suppressed=frozenset(plain["suppressed"]),
        last_seen_ms=plain["last_seen_ms"],
        detector=EquipmentDetector.from_state(detector) if detector is not None else None,
    )
