"""Settled equipment as rows of arrays: a wave of their instants decided at once (pure apart from holding state).

`step_quiet` decides one equipment's common instant in Python; its fixed cost per equipment is most
of the engine's. Here a settled equipment is a row of arrays, in a group of the equipment whose rules
have its shape, and a wave (at most one instant per equipment) is decided per group with a few array
operations: values against limits, rate and flatline windows pushed and read, timestamps against
each condition's last, anomaly scores (each metric's and the cross-metric term) from the banks.

A row holds the `EquipmentState` it entered with, and since then only what a quiet instant changes
(`step_quiet`): the time of each condition its rules touched (each one `Condition(False, None, None,
ts)`), the windows, and the time last seen. `release` rebuilds the state exactly from those. An
instant `step_quiet` would decline (a breach, a reading out of order) is handed back, its row
untouched and its anomaly scores already taken, for the engine to release the row and run
`step_general`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from alerts.engine.anomaly import COMBINED_KEY, CROSS_KEY
from alerts.engine.anomaly_bank import FleetDetector, grow_arrays
from alerts.engine.rules import Condition, Direction, RuleKind
from alerts.engine.step import (
    SENSOR_FAULT_KEYS,
    WINDOW_BUCKETS,
    Bucket,
    Check,
    EquipmentState,
    RuleTable,
    anomaly_metrics,
)

NO_TS = np.iinfo(np.int64).min  # no time: no condition yet, or never seen
RING = WINDOW_BUCKETS + 8  # a window holds at most WINDOW_BUCKETS + 3 buckets (`push_window`)
_MIN_ROWS = 64
# A managed rule's kind: a reading rule's `Check` (0-3), or one of these.
_RATE_HIGH, _RATE_LOW, _FLAT_HIGH, _FLAT_LOW, _ANOMALY_HIGH, _ANOMALY_LOW = 10, 11, 12, 13, 20, 21

Instant = tuple[int, Mapping[str, float]]  # (ts_ms, values)
Held = tuple[int, int, Mapping[str, float]]  # an instant of an equipment held as a row: (equipment, ts_ms, values)
# An instant handed back: (equipment, ts_ms, values, anomaly scores as `FleetDetector.score` gives them or None).
Loud = tuple[int, int, Mapping[str, float], dict[str, float] | None]


@dataclass(frozen=True, slots=True)
class Shape:
    """What the rows of one group share: their managed rules in order, and what those read.

    Managed rules come as reading rules (threshold, out-of-range), window rules (rate, flatline), then
    anomaly rules; an anomaly rule reads its metric's score, or the cross-metric or combined score.
    """

    metrics: tuple[str, ...]  # every metric read, in name order: the columns of a wave's values
    keys: tuple[str, ...]
    kinds: tuple[int, ...]
    reads: tuple[int, ...]  # a reading or window rule's metric (index in ``metrics``); an anomaly rule's
    # score: index in ``detector``, len(detector) for the cross-metric term, + 1 for the combined score
    windows_ms: tuple[int, ...]  # per window rule
    detector: tuple[str, ...]  # the anomaly detector's metrics (empty: no anomaly rules, nothing scored)
    cross: bool  # the detector has a cross-metric term (2 or 3 metrics)
    silence: tuple[str, ...]  # no-data rule keys


@dataclass(frozen=True, slots=True)
class Compiled:
    """One equipment's `Shape` with its own limits (one per managed rule; low NaN unless out-of-range)."""

    shape: Shape
    limits: tuple[float, ...]
    lows: tuple[float, ...]
    silence_s: float  # the shortest silence its "readings" no-data rules allow (inf: none)


def compile_shape(table: RuleTable) -> Compiled | None:
    """The rows' form of an equipment's rules (None for a rule on a score the rows do not give)."""
    reading: list[tuple[str, str, int, float, float]] = []
    window: list[tuple[str, str, int, float, float]] = []
    windows_ms: list[int] = []
    for metric, checks in table.checked:
        for rule, limit, low, key, check in checks:
            if check is Check.WINDOW:
                high = rule.direction is Direction.HIGH
                if rule.kind is RuleKind.RATE_OF_CHANGE:
                    kind = _RATE_HIGH if high else _RATE_LOW
                else:
                    kind = _FLAT_HIGH if high else _FLAT_LOW
                window.append((key, metric, kind, limit, math.nan))
                windows_ms.append(int(rule.window_s * 1000))
            else:
                reading.append((key, metric, int(check), limit, math.nan if low is None else low))
    detector = anomaly_metrics(table.rules) if table.anomaly else ()
    anomaly: list[tuple[str, int, int, float]] = []
    for rule, limit in table.anomaly:
        kind = _ANOMALY_HIGH if rule.direction is Direction.HIGH else _ANOMALY_LOW
        if rule.metric in detector:
            anomaly.append((rule.key, detector.index(rule.metric), kind, limit))
        elif rule.metric in (CROSS_KEY, COMBINED_KEY):
            anomaly.append((rule.key, len(detector) + (rule.metric == COMBINED_KEY), kind, limit))
        else:
            return None
    metrics = tuple(sorted({m for _, m, _, _, _ in reading + window} | set(detector)))
    rules = reading + window
    silence_s = min((limit for rule, limit in table.silence if rule.metric == "readings"), default=math.inf)
    shape = Shape(metrics, tuple(k for k, *_ in rules) + tuple(a[0] for a in anomaly),
                  tuple(r[2] for r in rules) + tuple(a[2] for a in anomaly),
                  tuple(metrics.index(r[1]) for r in rules) + tuple(a[1] for a in anomaly),
                  tuple(windows_ms), detector, 2 <= len(detector) <= 3, tuple(rule.key for rule, _ in table.silence))
    return Compiled(shape, tuple(r[3] for r in rules) + tuple(a[3] for a in anomaly),
                    tuple(r[4] for r in rules) + tuple(math.nan for _ in anomaly), silence_s)


class _Group:
    """The rows of one `Shape`; arrays grow by doubling, freed rows are reused."""

    _arrays = ("limit", "low", "order_ts", "touched", "last_seen", "silence_s", "det_rows", "cross_row", "live",
               "b_start", "b_last_ms", "b_lo", "b_hi", "b_last", "b_head", "b_count")

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        r, w, cap = len(shape.keys), len(shape.windows_ms), _MIN_ROWS
        self.limit = np.zeros((cap, r))
        self.low = np.full((cap, r), math.nan)
        self.order_ts = np.full((cap, r), NO_TS, dtype=np.int64)  # a reading older than this is out of order
        self.touched = np.zeros((cap, r), dtype=bool)  # condition set by a quiet instant since the row entered
        self.last_seen = np.full(cap, NO_TS, dtype=np.int64)
        self.silence_s = np.full(cap, math.inf)
        self.det_rows = np.zeros((cap, len(shape.detector)), dtype=np.int64)
        self.cross_row = np.zeros(cap, dtype=np.int64)
        self.live = np.zeros(cap, dtype=bool)
        # Each window rule's buckets (`Bucket`), a ring of RING from ``b_head``, ``b_count`` of them.
        self.b_start = np.zeros((cap, w, RING), dtype=np.int64)
        self.b_last_ms = np.zeros((cap, w, RING), dtype=np.int64)
        self.b_lo = np.zeros((cap, w, RING))
        self.b_hi = np.zeros((cap, w, RING))
        self.b_last = np.zeros((cap, w, RING))
        self.b_head = np.zeros((cap, w), dtype=np.int64)
        self.b_count = np.zeros((cap, w), dtype=np.int64)
        self.entered: list[EquipmentState | None] = [None] * cap
        self.ids: list[int] = [0] * cap
        self.free: list[int] = []
        self.size = 0
        kinds = np.array(shape.kinds, dtype=np.int64)
        self.n_read = int(np.sum(kinds < _RATE_HIGH))
        self.n_window = w
        self.read_kinds = kinds[: self.n_read]
        self.window_kinds = kinds[self.n_read: self.n_read + w]
        self.anomaly_high = kinds[self.n_read + w:] == _ANOMALY_HIGH
        self.anomaly_of = np.array(shape.reads[self.n_read + w:], dtype=np.int64)
        self.metric_cols = np.array(shape.reads[: self.n_read + w], dtype=np.int64)
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

    def ids(self) -> list[int]:
        return list(self._where)

    def partition(self, wave: list[tuple[int, Instant]]) -> tuple[list[Held], list[tuple[int, Instant]]]:
        """Split a wave of (equipment, (ts_ms, values)): the instants of rows here, as `step` takes them,
        and the rest as given."""
        where = self._where
        held = [(eq_id, ts, values) for eq_id, (ts, values) in wave if eq_id in where]
        if len(held) == len(wave):
            return held, []
        return held, [item for item in wave if item[0] not in where]

    def admit(self, eq_id: int, compiled: Compiled, state: EquipmentState,
              banked: tuple[tuple[int, ...], int | None] | None) -> bool:
        """Take ``state`` as a row when it is settled. ``banked``: the bank rows of the detector's metrics
        (`Shape.detector` order) and of its cross-metric term, needed when it has any (`FleetDetector.banked`).
        Returns whether it was taken."""
        shape = compiled.shape
        conditions = state.conditions
        if (eq_id in self._where or state.detector is not None or (shape.detector and banked is None)
                or not SENSOR_FAULT_KEYS.isdisjoint(conditions)):
            return False
        if banked is not None and (banked[1] is not None) != shape.cross:
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
        window_keys = shape.keys[group.n_read: group.n_read + group.n_window]
        windows = [state.windows.get(key, ()) for key in window_keys]
        if any(len(w) >= RING for w in windows):
            return False
        row = group.take()
        group.limit[row] = compiled.limits
        group.low[row] = compiled.lows
        group.order_ts[row] = order
        group.touched[row] = False
        group.last_seen[row] = NO_TS if state.last_seen_ms is None else state.last_seen_ms
        group.silence_s[row] = compiled.silence_s
        if banked is not None:
            group.det_rows[row] = banked[0]
            group.cross_row[row] = -1 if banked[1] is None else banked[1]
        group.b_head[row] = 0
        for w, buckets in enumerate(windows):
            group.b_count[row, w] = len(buckets)
            for i, b in enumerate(buckets):
                group.b_start[row, w, i], group.b_lo[row, w, i], group.b_hi[row, w, i] = b.start_ms, b.lo, b.hi
                group.b_last[row, w, i], group.b_last_ms[row, w, i] = b.last, b.last_ms
        group.live[row] = True
        # The rings hold the windows now: the state kept beside them need not (half a row's memory).
        group.entered[row] = replace(state, windows={k: v for k, v in state.windows.items() if k not in window_keys})
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
        for r, touched in enumerate(group.touched[row].tolist()):
            if touched:
                conditions[keys[r]] = Condition(False, None, None, times[r])
        windows = dict(entered.windows)
        if group.n_window:
            # Whole rows to Python at once: per-element numpy indexing would cost more than the rest of peek.
            counts, heads = group.b_count[row].tolist(), group.b_head[row].tolist()
            for w, count in enumerate(counts):
                if count:
                    at = [(heads[w] + i) % RING for i in range(count)]
                    windows[keys[group.n_read + w]] = tuple(map(
                        Bucket, group.b_start[row, w, at].tolist(), group.b_lo[row, w, at].tolist(),
                        group.b_hi[row, w, at].tolist(), group.b_last[row, w, at].tolist(),
                        group.b_last_ms[row, w, at].tolist()))
        last = int(group.last_seen[row])
        return EquipmentState(conditions, windows, entered.changes, entered.suppressed,
                              None if last == NO_TS else last, entered.detector)

    def release(self, eq_id: int) -> EquipmentState:
        """`peek`, and the row is freed: the equipment's state is the caller's again."""
        state = self.peek(eq_id)
        group, row = self._where.pop(eq_id)
        group.live[row] = False
        group.entered[row] = None
        group.free.append(row)
        return state

    def step(self, wave: Sequence[Held], detectors: FleetDetector) -> list[Loud]:
        """Decide one instant (ts_ms, values) of each of several equipment, all rows here, each at most once.

        Quiet instants move their rows; the others come back (`Loud`), their rows untouched but their
        anomaly streams already scored (as they would have been), for the general step.
        """
        by_group: dict[_Group, tuple[list[int], list[int], list[float | None], list[int]]] = {}
        where = self._where
        for index, (eq_id, ts_ms, values) in enumerate(wave):
            group, row = where[eq_id]
            batch = by_group.get(group)
            if batch is None:
                batch = by_group[group] = ([], [], [], [])
            batch[0].append(row)
            batch[1].append(ts_ms)
            batch[2].extend(map(values.get, group.shape.metrics))  # None where absent: NaN in the array
            batch[3].append(index)
        waves = [(group, np.array(rows, dtype=np.int64), np.array(times, dtype=np.int64),
                  np.array(flat, dtype=float).reshape(len(rows), -1), indexes)
                 for group, (rows, times, flat, indexes) in by_group.items()]
        banked = _bank_scores([(group, rows, ts, x) for group, rows, ts, x, _ in waves], detectors)
        loud: list[Loud] = []
        for (group, rows, ts, x, indexes), group_banked in zip(waves, banked, strict=True):
            for i, found in _step_group(group, rows, ts, x, detectors, group_banked):
                eq_id, ts_ms, values = wave[indexes[i]]
                loud.append((eq_id, ts_ms, values, found))
        return loud

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


class _Pushed:
    """One window rule's buckets for some rows of a wave after a reading each (`push_window`), not yet
    kept: ``sel`` picks those rows (the ones with a reading of the rule's metric) out of the wave's.

    A push writes one bucket (the newest, merged into or appended) and moves the ring's head and count,
    so only those are read and kept, not whole rings: the newest bucket always ends at the reading
    (``ts``, ``v``), and a flatline rule alone reads the rings' bounds (with the newest one's own).
    """

    def __init__(self, group: _Group, w: int, sel: np.ndarray, rows: np.ndarray, ts: np.ndarray,
                 v: np.ndarray) -> None:
        window_ms = group.shape.windows_ms[w]
        self.w, self.sel, self.rows = w, sel, rows
        base = (rows * group.n_window + w) * RING  # of each row's ring in the flattened bucket arrays
        b_start, b_last_ms = group.b_start.reshape(-1), group.b_last_ms.reshape(-1)
        b_lo, b_hi, b_last = group.b_lo.reshape(-1), group.b_hi.reshape(-1), group.b_last.reshape(-1)
        head, count = group.b_head[rows, w], group.b_count[rows, w]
        tail = (head + count - 1) % RING
        width = max(1, window_ms // WINDOW_BUCKETS)
        start = b_start[base + tail]
        merge = (count > 0) & (ts - start < width)
        # The bucket written: the tail, widened by the reading; or a new one after it.
        at = np.where(merge, tail, (head + count) % RING)
        start = np.where(merge, start, ts)
        lo, hi = b_lo[base + at], b_hi[base + at]
        lo = np.where(merge, np.minimum(lo, v), v)
        hi = np.where(merge, np.maximum(hi, v), v)
        count = count + ~merge
        horizon = ts - window_ms
        while True:  # keep one bucket that ends at or before the window start (the anchor)
            second = (head + 1) % RING
            ends = np.where(second == at, ts, b_last_ms[base + second])
            drop = (count > 1) & (ends <= horizon)
            if not drop.any():
                break
            head = np.where(drop, second, head)
            count = count - drop
        # The head is the bucket written only when it is the ring's one bucket: then nothing is covered
        # and what is observed below is not read.
        first_ms, first = b_last_ms[base + head], b_last[base + head]
        self.covered = (count >= 2) & (first_ms <= ts - window_ms)
        self.full = count >= RING - 1  # never reached (see RING); if it were, the general step takes the row
        kind = int(group.window_kinds[w])
        if kind in (_RATE_HIGH, _RATE_LOW):
            with np.errstate(divide="ignore", invalid="ignore"):  # a window not covered: observes nothing
                rate = (v - first) * 60_000 / (ts - first_ms)
            # A "low" rate rule watches falls: the fall is observed as a positive number (see `evaluate`).
            self.observed = rate if kind == _RATE_HIGH else -rate
        else:
            n = np.arange(len(rows))
            ring_lo, ring_hi = group.b_lo[rows, w], group.b_hi[rows, w]
            ring_lo[n, at], ring_hi[n, at] = lo, hi
            offset = (np.arange(RING)[None, :] - head[:, None]) % RING
            inner = (offset >= 1) & (offset < count[:, None])
            low = np.minimum(np.where(inner, ring_lo, np.inf).min(axis=1), first)
            high = np.maximum(np.where(inner, ring_hi, -np.inf).max(axis=1), first)
            self.observed = high - low
        self.written = (base + at, start, ts, lo, hi, v)
        self.head, self.count = head, count

    def keep(self, group: _Group, quiet: np.ndarray) -> None:
        """Keep the pushed buckets of the wave's quiet rows (``quiet``: a mask over the wave)."""
        which = quiet[self.sel]
        rows, w = self.rows[which], self.w
        at, start, last_ms, lo, hi, last = (x[which] for x in self.written)
        group.b_start.reshape(-1)[at], group.b_last_ms.reshape(-1)[at] = start, last_ms
        group.b_lo.reshape(-1)[at], group.b_hi.reshape(-1)[at], group.b_last.reshape(-1)[at] = lo, hi, last
        group.b_head[rows, w], group.b_count[rows, w] = self.head[which], self.count[which]


def _step_group(group: _Group, rows: np.ndarray, ts: np.ndarray, x: np.ndarray, detectors: FleetDetector,
                banked: _Banked | None) -> list[tuple[int, dict[str, float] | None]]:
    """The wave's instants of one group's rows: keep the quiet ones; return the others (index, scores)."""
    shape = group.shape
    n_read, n_window = group.n_read, group.n_window
    n_rules = len(shape.keys)
    n = len(rows)
    limit = group.limit[rows]
    present = np.zeros((n, n_rules), dtype=bool)
    breach = np.zeros((n, n_rules), dtype=bool)
    covered = np.ones((n, n_rules), dtype=bool)  # a window rule observes nothing until its window is covered
    v = x[:, group.metric_cols]
    present[:, : n_read + n_window] = ~np.isnan(v)
    if n_read:
        vr, lim, low, k = v[:, :n_read], limit[:, :n_read], group.low[rows][:, :n_read], group.read_kinds
        inside = (low <= vr) & (vr <= lim)
        breach[:, :n_read] = np.where(k == Check.ABOVE, vr > lim, np.where(
            k == Check.BELOW, vr < lim, np.where(k == Check.OUTSIDE, ~inside, inside)))
    pushed: list[_Pushed] = []
    for w in range(n_window):
        col = n_read + w
        sel = np.flatnonzero(present[:, col])
        if not len(sel):
            continue
        p = _Pushed(group, w, sel, rows[sel], ts[sel], v[sel, col])
        pushed.append(p)
        lim = limit[sel, col]
        hit = p.observed < lim if int(group.window_kinds[w]) == _FLAT_LOW else p.observed > lim
        breach[sel, col] = (p.covered & hit) | p.full
        covered[sel, col] = p.covered
    scores = None
    if banked is not None:
        scores = _scores(group, rows, detectors, banked)
        present[:, n_read + n_window:] = ~np.isnan(scores[:, group.anomaly_of])
        s, lim = scores[:, group.anomaly_of], limit[:, n_read + n_window:]
        breach[:, n_read + n_window:] = np.where(group.anomaly_high, s > lim, s < lim)
    order = group.order_ts[rows]
    loud = (present & (breach | (ts[:, None] < order))).any(axis=1)
    quiet = ~loud
    if quiet.any():
        touch = (present & covered)[quiet]
        q, t = rows[quiet], ts[quiet]
        group.order_ts[q] = np.where(touch, t[:, None], order[quiet])
        group.touched[q] |= touch
        group.last_seen[q] = np.maximum(group.last_seen[q], t)
        for p in pushed:
            p.keep(group, quiet)
    out: list[tuple[int, dict[str, float] | None]] = []
    for i in np.flatnonzero(loud).tolist():
        found = None
        if scores is not None:
            row = scores[i].tolist()
            got = {m: s for m, s in zip(shape.detector, row, strict=False) if not math.isnan(s)}
            if got:  # as `FleetDetector.score`: the metrics scored, the cross-metric term, their maximum
                found = {**got, CROSS_KEY: row[len(shape.detector)], COMBINED_KEY: row[len(shape.detector) + 1]}
        out.append((i, found))
    return out


class _Banked(NamedTuple):
    """A group's readings of the detector's metrics in a wave (rows × metrics), which of them are
    readings (not NaN), and their scores from the fleet's detector bank (NaN where no reading)."""

    xd: np.ndarray
    scored: np.ndarray
    metric_scores: np.ndarray


def _bank_scores(waves: list[tuple[_Group, np.ndarray, np.ndarray, np.ndarray]],
                 detectors: FleetDetector) -> list[_Banked | None]:
    """Each group's readings scored by the fleet's detector bank (None for a group without a
    detector), in one update for all the groups: its cost is mostly per call, and its rows are
    distinct across groups (one equipment, one group)."""
    picked: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None] = []
    for group, rows, ts, x in waves:
        if not group.shape.detector:
            picked.append(None)
            continue
        xd = x[:, group.det_cols]
        scored = ~np.isnan(xd)
        at = np.broadcast_to((ts / 1000)[:, None], xd.shape)
        picked.append((xd, scored, group.det_rows[rows][scored], xd[scored], at[scored]))
    taken = [p for p in picked if p is not None]
    if not sum(len(p[2]) for p in taken):
        return [None if p is None else _Banked(p[0], p[1], np.full(p[1].shape, math.nan)) for p in picked]
    found = detectors.bank.update(*(np.concatenate([p[k] for p in taken]) for k in (2, 3, 4)))
    out: list[_Banked | None] = []
    start = 0  # of each group's slice in ``found``
    for p in picked:
        if p is None:
            out.append(None)
            continue
        xd, scored, bank_rows = p[0], p[1], p[2]
        metric_scores = np.full(scored.shape, math.nan)
        metric_scores[scored] = found[start:start + len(bank_rows)]
        start += len(bank_rows)
        out.append(_Banked(xd, scored, metric_scores))
    return out


def _scores(group: _Group, rows: np.ndarray, detectors: FleetDetector, banked: _Banked) -> np.ndarray:
    """Each row's anomaly scores (columns: the detector's metrics, the cross-metric term, the combined
    score; NaN where `FleetDetector.score` gives none), its streams advanced as that would; the
    readings and the metrics' own scores from `_bank_scores`."""
    shape = group.shape
    d = len(shape.detector)
    xd, scored, metric_scores = banked
    scores = np.full((len(rows), d + 2), math.nan)
    any_scored = scored.any(axis=1)
    if not any_scored.any():
        return scores
    scores[:, :d] = metric_scores
    cross = np.zeros(len(rows))
    if shape.cross:
        full = np.flatnonzero(scored.all(axis=1))
        if len(full):
            cross[full] = detectors.cross_banks[d].update(group.cross_row[rows[full]], xd[full])
    scores[:, d] = np.where(any_scored, cross, math.nan)
    combined = np.maximum(np.where(scored, metric_scores, -np.inf).max(axis=1), cross)
    scores[:, d + 1] = np.where(any_scored, combined, math.nan)
    return scores
