"""Settled equipment as rows of arrays: a wave of their instants decided at once (pure apart from holding state).

`step_quiet` decides one equipment's common instant in Python; its fixed cost per equipment is most
of the engine's. Here an equipment whose rules are all decided on the reading itself (thresholds,
out-of-range, anomaly scores of its own metrics; no rate or flatline window, no cross-metric term)
and whose state is settled is a row of arrays, in a group of the equipment whose rules have its
shape. A wave (at most one instant per equipment) is then decided per group with a few array
operations: values against limits, timestamps against each condition's last, anomaly scores from
the `DetectorBank` rows all at once.

A row holds the `EquipmentState` it entered with, and since then only what a quiet instant changes
(`step_quiet`): the time of each condition its rules touched (each one `Condition(False, None, None,
ts)`) and the time last seen. `release` rebuilds the state exactly from those. An instant
`step_quiet` would decline (a breach, a reading out of order) is handed back, with its anomaly
scores already taken, for the engine to release the row and run `step_general`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from alerts.engine.anomaly import COMBINED_KEY, CROSS_KEY
from alerts.engine.anomaly_bank import DetectorBank, grow_arrays
from alerts.engine.rules import Condition, Direction
from alerts.engine.step import SENSOR_FAULT_KEYS, Check, EquipmentState, RuleTable, anomaly_metrics

NO_TS = np.iinfo(np.int64).min  # no time: no condition yet, or never seen
_ANOMALY_HIGH, _ANOMALY_LOW = 5, 6  # kinds beside `Check`'s, for anomaly rules
_MIN_ROWS = 64

# An instant handed back: (equipment, ts_ms, values, anomaly scores as `FleetDetector.score` gives them or None).
Loud = tuple[int, int, Mapping[str, float], dict[str, float] | None]


@dataclass(frozen=True, slots=True)
class Shape:
    """What the rows of one group share: their managed rules in order, and what those read."""

    metrics: tuple[str, ...]  # every metric read, in name order: the columns of a wave's values
    keys: tuple[str, ...]  # managed rules: reading rules, then anomaly rules
    kinds: tuple[int, ...]  # a reading rule's `Check`; _ANOMALY_HIGH / _ANOMALY_LOW
    reads: tuple[int, ...]  # per managed rule: the index of its metric in ``metrics``
    detector: tuple[str, ...]  # the anomaly detector's metrics (empty: no anomaly rules, nothing scored)
    silence: tuple[str, ...]  # no-data rule keys


@dataclass(frozen=True, slots=True)
class Compiled:
    """One equipment's `Shape` with its own limits (one per managed rule; low NaN unless out-of-range)."""

    shape: Shape
    limits: tuple[float, ...]
    lows: tuple[float, ...]
    silence_s: float  # the shortest silence its "readings" no-data rules allow (inf: none)


def compile_shape(table: RuleTable) -> Compiled | None:
    """The rows' form of an equipment's rules; None when a rule needs more than its reading (a window)."""
    keys, kinds, metric_of, limits, lows = [], [], [], [], []
    for metric, checks in table.checked:
        for _, limit, low, key, check in checks:
            if check is Check.WINDOW:
                return None
            keys.append(key)
            kinds.append(int(check))
            metric_of.append(metric)
            limits.append(limit)
            lows.append(math.nan if low is None else low)
    detector = anomaly_metrics(table.rules) if table.anomaly else ()
    for rule, limit in table.anomaly:
        if rule.metric not in detector:
            return None  # the cross-metric or combined score: the general way
        keys.append(rule.key)
        kinds.append(_ANOMALY_HIGH if rule.direction is Direction.HIGH else _ANOMALY_LOW)
        metric_of.append(rule.metric)
        limits.append(limit)
        lows.append(math.nan)
    metrics = tuple(sorted({*metric_of, *detector}))
    silence_s = min((limit for rule, limit in table.silence if rule.metric == "readings"), default=math.inf)
    shape = Shape(metrics, tuple(keys), tuple(kinds), tuple(metrics.index(m) for m in metric_of), detector,
                  tuple(rule.key for rule, _ in table.silence))
    return Compiled(shape, tuple(limits), tuple(lows), silence_s)


class _Group:
    """The rows of one `Shape`; arrays grow by doubling, freed rows are reused."""

    _arrays = ("limit", "low", "order_ts", "touched", "last_seen", "silence_s", "det_rows", "live")

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        r, cap = len(shape.keys), _MIN_ROWS
        self.limit = np.zeros((cap, r))
        self.low = np.full((cap, r), math.nan)
        self.order_ts = np.full((cap, r), NO_TS, dtype=np.int64)  # a reading older than this is out of order
        self.touched = np.zeros((cap, r), dtype=bool)  # condition set by a quiet instant since the row entered
        self.last_seen = np.full(cap, NO_TS, dtype=np.int64)
        self.silence_s = np.full(cap, math.inf)
        self.det_rows = np.zeros((cap, len(shape.detector)), dtype=np.int64)
        self.live = np.zeros(cap, dtype=bool)
        self.entered: list[EquipmentState | None] = [None] * cap
        self.ids: list[int] = [0] * cap
        self.free: list[int] = []
        self.size = 0
        kinds = np.array(shape.kinds, dtype=np.int64)
        self.n_read = int(np.sum(kinds < _ANOMALY_HIGH))
        self.read_kinds = kinds[: self.n_read]
        self.read_cols = np.array(shape.reads[: self.n_read], dtype=np.int64)
        self.anomaly_high = kinds[self.n_read:] == _ANOMALY_HIGH
        self.anomaly_of = np.array([shape.detector.index(shape.metrics[c]) for c in shape.reads[self.n_read:]],
                                   dtype=np.int64)
        self.det_cols = np.array([shape.metrics.index(m) for m in shape.detector], dtype=np.int64)

    def take(self) -> int:
        if self.free:
            return self.free.pop()
        if self.size == len(self.live):
            capacity = 2 * self.size
            grow_arrays(self, self._arrays, capacity)
            self.entered.extend([None] * (capacity - self.size))
            self.ids.extend([0] * (capacity - self.size))
        self.size += 1
        return self.size - 1


class QuietColumns:
    """Every settled equipment of a shard whose rules fit, as rows (see the module docstring)."""

    def __init__(self) -> None:
        self._groups: dict[Shape, _Group] = {}
        self._where: dict[int, tuple[_Group, int]] = {}

    def __contains__(self, eq_id: int) -> bool:
        return eq_id in self._where

    def __len__(self) -> int:
        return len(self._where)

    def admit(self, eq_id: int, compiled: Compiled, state: EquipmentState, det_rows: Sequence[int] | None) -> bool:
        """Take ``state`` as a row when it is settled; ``det_rows``: the bank rows of the detector's
        metrics (`Shape.detector` order), needed when it has any. Returns whether it was taken."""
        shape = compiled.shape
        conditions = state.conditions
        if (eq_id in self._where or state.detector is not None or (shape.detector and det_rows is None)
                or not SENSOR_FAULT_KEYS.isdisjoint(conditions)):
            return False
        order = []
        for key in shape.keys:
            cond = conditions.get(key)
            if cond is not None and cond.active:
                return False
            order.append(NO_TS if cond is None or cond.last_ts_ms is None else cond.last_ts_ms)
        for key in shape.silence:
            cond = conditions.get(key)
            if cond is not None and (cond.active or cond.pending_since_ms is not None
                                     or cond.clearing_since_ms is not None):
                return False
        group = self._groups.get(shape)
        if group is None:
            group = self._groups[shape] = _Group(shape)
        row = group.take()
        group.limit[row] = compiled.limits
        group.low[row] = compiled.lows
        group.order_ts[row] = order
        group.touched[row] = False
        group.last_seen[row] = NO_TS if state.last_seen_ms is None else state.last_seen_ms
        group.silence_s[row] = compiled.silence_s
        if shape.detector:
            group.det_rows[row] = det_rows
        group.live[row] = True
        group.entered[row] = state
        group.ids[row] = eq_id
        self._where[eq_id] = (group, row)
        return True

    def peek(self, eq_id: int) -> EquipmentState:
        """The equipment's state now, exactly as the general step would have left it (the row stays)."""
        group, row = self._where[eq_id]
        entered = group.entered[row]
        assert entered is not None
        conditions = dict(entered.conditions)
        keys = group.shape.keys
        times = group.order_ts[row].tolist()
        for r in np.flatnonzero(group.touched[row]).tolist():
            conditions[keys[r]] = Condition(False, None, None, times[r])
        last = int(group.last_seen[row])
        return EquipmentState(conditions, entered.windows, entered.changes, entered.suppressed,
                              None if last == NO_TS else last, entered.detector)

    def release(self, eq_id: int) -> EquipmentState:
        """`peek`, and the row is freed: the equipment's state is the caller's again."""
        state = self.peek(eq_id)
        group, row = self._where.pop(eq_id)
        group.live[row] = False
        group.entered[row] = None
        group.free.append(row)
        return state

    def ids(self) -> list[int]:
        return list(self._where)

    def step(self, wave: Sequence[tuple[int, int, Mapping[str, float]]], bank: DetectorBank) -> list[Loud]:
        """Decide one instant (ts_ms, values) of each of several equipment, all rows here, each at most once.

        Quiet instants move their rows' times; the others come back (`Loud`), their rows untouched but
        their anomaly streams already scored (as they would have been), for the general step.
        """
        by_group: dict[_Group, tuple[list[int], list[int], list[float], list[int]]] = {}
        nan = math.nan
        where = self._where
        for index, (eq_id, ts_ms, values) in enumerate(wave):
            group, row = where[eq_id]
            batch = by_group.get(group)
            if batch is None:
                batch = by_group[group] = ([], [], [], [])
            batch[0].append(row)
            batch[1].append(ts_ms)
            batch[2].extend([values.get(m, nan) for m in group.shape.metrics])
            batch[3].append(index)
        loud: list[Loud] = []
        for group, (rows, times, flat, indexes) in by_group.items():
            for i, found in self._step_group(group, rows, times, flat, bank):
                eq_id, ts_ms, values = wave[indexes[i]]
                loud.append((eq_id, ts_ms, values, found))
        return loud

    @staticmethod
    def _step_group(group: _Group, row_list: list[int], time_list: list[int], flat: list[float],
                    bank: DetectorBank) -> list[tuple[int, dict[str, float] | None]]:
        shape = group.shape
        rows = np.array(row_list, dtype=np.int64)
        ts = np.array(time_list, dtype=np.int64)
        x = np.array(flat, dtype=float).reshape(len(rows), len(shape.metrics))
        n_read = group.n_read
        v = x[:, group.read_cols]
        present = ~np.isnan(x[:, np.array(shape.reads, dtype=np.int64)])
        limit = group.limit[rows]
        breach = np.zeros(present.shape, dtype=bool)
        if n_read:
            lim, low, k = limit[:, :n_read], group.low[rows][:, :n_read], group.read_kinds
            inside = (low <= v) & (v <= lim)
            breach[:, :n_read] = np.where(k == Check.ABOVE, v > lim, np.where(
                k == Check.BELOW, v < lim, np.where(k == Check.OUTSIDE, ~inside, inside)))
        scores = None
        if shape.detector:
            xd = x[:, group.det_cols]
            scored = ~np.isnan(xd)
            scores = np.full(xd.shape, math.nan)
            if scored.any():
                at = np.broadcast_to((ts / 1000)[:, None], xd.shape)
                scores[scored] = bank.update(group.det_rows[rows][scored], xd[scored], at[scored])
            if n_read < len(shape.keys):
                s, lim = scores[:, group.anomaly_of], limit[:, n_read:]
                breach[:, n_read:] = np.where(group.anomaly_high, s > lim, s < lim)
        order = group.order_ts[rows]
        loud = (present & (breach | (ts[:, None] < order))).any(axis=1)
        quiet = ~loud
        if quiet.any():
            q, p, t = rows[quiet], present[quiet], ts[quiet]
            group.order_ts[q] = np.where(p, t[:, None], order[quiet])
            group.touched[q] |= p
            group.last_seen[q] = np.maximum(group.last_seen[q], t)
        out: list[tuple[int, dict[str, float] | None]] = []
        for i in np.flatnonzero(loud).tolist():
            found = None
            if scores is not None:
                got = {m: s for m, s in zip(shape.detector, scores[i].tolist(), strict=True) if not math.isnan(s)}
                if got:  # as `FleetDetector.score`: the metrics scored, no cross term, their maximum
                    found = {**got, CROSS_KEY: 0.0}
                    found[COMBINED_KEY] = max(found.values())
            out.append((i, found))
        return out

    def silent_candidates(self, now_ms: int) -> list[int]:
        """The equipment whose no-data rules `check_silence` might raise at ``now_ms``; the rest it leaves be."""
        out: list[int] = []
        for group in self._groups.values():
            n = group.size
            seen = group.last_seen[:n]
            # Every no-data condition of a row is normal with no delay running: `check_silence` raises
            # only past the shortest limit (at a time older than a condition's, `evaluate` ignores it).
            due = group.live[:n] & (seen != NO_TS) & ((now_ms - seen) / 1000 > group.silence_s[:n])
            out.extend(group.ids[r] for r in np.flatnonzero(due).tolist())
        return out
