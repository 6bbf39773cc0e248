"""The anomaly detectors of a whole shard at once: the same scores, one numpy pass per instant (pure).

`alerts.engine.anomaly` scores one reading at a time in Python; that is the reference, and what NAB
scored. Past its learning period a metric's detector costs ~20 µs a reading there, most of the alert
engine. Here the state of every metric stream past learning lives in arrays, one row a stream
(`DetectorBank`), and the readings of one instant across all equipment are scored together: the
context hashes, the bit tables, the surprise statistics, the rest period, each one array operation
over the rows. `FleetDetector` is what the engine holds: equipment → streams, scored in waves (each
equipment's first instant, then its second, ...) so every stream still sees its readings in order.

Every score equals the reference's bit for bit, shown by tests that run both on the same series:

- integer hashing in uint64 wraps modulo 2**64, and the reference masks to 61 bits, so the low 61
  bits (all that is kept) are the same;
- elementwise float arithmetic is written in the reference's order, and ``erfc``/``log`` (whose last
  bit may differ between libm and numpy) are taken from ``math``, value by value;
- a stream still learning is a reference `MetricDetector` (learning is only collecting readings);
  it moves into the bank, state copied exactly, when its learning ends;
- the cross-metric term (a 2-3 metric solve per equipment) stays the reference's own object.

The one difference: a quantisation bin beyond ±2**62 (a value 10**18 grid steps out of the learned
range, which the contract's physical limits rule out) is clipped, where the reference's Python ints
are unbounded.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from alerts.engine.anomaly import (
    _DAY_S,
    _LOG_TAIL_FLOOR,
    _MASK,
    _PRIME,
    _SQRT2,
    COMBINED_KEY,
    CROSS_KEY,
    AnomalyConfig,
    EquipmentDetector,
    MetricDetector,
    _CrossMetric,
)

__all__ = ["DetectorBank", "FleetDetector"]

_BIN_CLIP = float(2**62)
_MIN_ROWS = 256


class _SurpriseRows:
    """`anomaly._Surprise` for many streams: one row of the arrays per stream."""

    def __init__(self, config: AnomalyConfig, capacity: int) -> None:
        self.window = config.avg_window
        self.min_std = config.min_std
        self.alpha = 1.0 - 0.5 ** (1.0 / config.long_halflife)
        self.ring = np.zeros((capacity, self.window))
        self.pos = np.zeros(capacity, dtype=np.int64)
        self.total = np.zeros(capacity)
        self.mean = np.zeros(capacity)
        self.var = np.zeros(capacity)
        self.count = np.zeros(capacity, dtype=np.int64)

    def grow(self, capacity: int) -> None:
        for name in ("ring", "pos", "total", "mean", "var", "count"):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def put(self, row: int, s: object) -> None:
        """Copy a reference `_Surprise` into ``row``."""
        self.ring[row] = s.ring  # type: ignore[attr-defined]
        self.pos[row] = s.pos  # type: ignore[attr-defined]
        self.total[row] = s.total  # type: ignore[attr-defined]
        self.mean[row] = s.mean  # type: ignore[attr-defined]
        self.var[row] = s.var  # type: ignore[attr-defined]
        self.count[row] = s.count  # type: ignore[attr-defined]

    def get(self, row: int, s: object) -> None:
        """Copy ``row`` into a reference `_Surprise`."""
        s.ring = self.ring[row].tolist()  # type: ignore[attr-defined]
        s.pos = int(self.pos[row])  # type: ignore[attr-defined]
        s.total = float(self.total[row])  # type: ignore[attr-defined]
        s.mean = float(self.mean[row])  # type: ignore[attr-defined]
        s.var = float(self.var[row])  # type: ignore[attr-defined]
        s.count = int(self.count[row])  # type: ignore[attr-defined]

    def score(self, rows: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Score ``raw`` of each row against its past, then learn from it (as `_Surprise.score`)."""
        pos = self.pos[rows]
        total = self.total[rows] + (raw - self.ring[rows, pos])
        self.ring[rows, pos] = raw
        pos += 1
        wrapped = np.flatnonzero(pos == self.window)
        if len(wrapped):
            pos[wrapped] = 0
            for i in wrapped.tolist():  # the sum afresh, 1-D as the reference takes it: no drift
                total[i] = float(np.sum(self.ring[rows[i]]))
        self.pos[rows] = pos
        self.total[rows] = total
        avg = total / self.window
        mean, var, count = self.mean[rows], self.var[rows], self.count[rows]
        z = (avg - mean) / np.maximum(np.sqrt(var), self.min_std)
        erfc, log = math.erfc, math.log
        s = np.array([min(1.0, max(0.0, log(0.5 * erfc(v / _SQRT2) + 1e-10) / _LOG_TAIL_FLOOR))
                      for v in z.tolist()])
        s[count < 10] = 0.0
        a = np.maximum(self.alpha, 1.0 / (count + 1))
        d = avg - mean
        self.mean[rows] = mean + a * d
        self.var[rows] = (1.0 - a) * (var + a * d * d)
        self.count[rows] = count + 1
        return s


class DetectorBank:
    """The state of many `MetricDetector`s past learning, a row each, updated together.

    Rows are taken with `put` (a detector whose learning has ended) and given back with `get`.
    """

    def __init__(self, config: AnomalyConfig, capacity: int = _MIN_ROWS) -> None:
        c = self.config = config
        self.width = c.table_slots // 8
        self.size = 0
        self.tables = np.zeros((capacity, c.tables, self.width), dtype=np.uint8)
        self.bins = np.zeros((capacity, len(c.bins), c.max_order), dtype=np.int64)
        self.lo = np.zeros(capacity)
        self.span = np.zeros(capacity)
        self.step = np.zeros((capacity, len(c.bins)))  # grid widths: span / levels
        self.seen_min = np.zeros(capacity)
        self.seen_max = np.zeros(capacity)
        self.n = np.zeros(capacity, dtype=np.int64)
        self.quiet_until = np.zeros(capacity, dtype=np.int64)
        self.seq = _SurpriseRows(c, capacity)
        self.tod = _SurpriseRows(c, capacity)
        self._free: list[int] = []

    @property
    def capacity(self) -> int:
        return len(self.n)

    def nbytes(self) -> int:
        """Bytes of the arrays, every row (used or free) included."""
        arrays = [self.tables, self.bins, self.lo, self.span, self.step, self.seen_min, self.seen_max, self.n,
                  self.quiet_until]
        for s in (self.seq, self.tod):
            arrays += [s.ring, s.pos, s.total, s.mean, s.var, s.count]
        return sum(a.nbytes for a in arrays)

    def _grow(self) -> None:
        capacity = self.capacity * 2  # doubling: a copy now and then, amortised to nothing a reading
        for name in ("tables", "bins", "lo", "span", "step", "seen_min", "seen_max", "n", "quiet_until"):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)
        self.seq.grow(capacity)
        self.tod.grow(capacity)

    def put(self, detector: MetricDetector) -> int:
        """Take over a detector past its learning period; returns its row."""
        if detector.learning:
            raise ValueError("only a detector past its learning period goes into the bank")
        if detector.config != self.config:
            raise ValueError("the detector's config is not the bank's")
        if self._free:
            row = self._free.pop()
        else:
            if self.size == self.capacity:
                self._grow()
            row = self.size
            self.size += 1
        self.tables[row] = detector._tables
        self.bins[row] = np.asarray(detector._bin_lists, dtype=np.int64)
        self.lo[row] = detector._lo
        self.span[row] = detector._span
        self.step[row] = [width for _, width in detector._grids]
        self.seen_min[row] = detector._seen_min
        self.seen_max[row] = detector._seen_max
        self.n[row] = detector._n
        self.quiet_until[row] = detector._quiet_until
        self.seq.put(row, detector._seq)
        self.tod.put(row, detector._tod)
        return row

    def get(self, row: int) -> MetricDetector:
        """The row as a reference detector (a copy: the bank's row goes on unchanged)."""
        d = MetricDetector(self.config)
        d._release_learning_buffers()
        d._n = int(self.n[row])
        d._lo = float(self.lo[row])
        d._span = float(self.span[row])
        d._grids = [(d._lo, float(w)) for w in self.step[row]]
        d._seen_min = float(self.seen_min[row])
        d._seen_max = float(self.seen_max[row])
        d._buf[:] = self.tables[row].tobytes()
        d._bin_lists = [list(map(int, r)) for r in self.bins[row]]
        d._sync_bins()
        d._quiet_until = int(self.quiet_until[row])
        self.seq.get(row, d._seq)
        self.tod.get(row, d._tod)
        return d

    def release(self, row: int) -> None:
        """Free a row for the next stream."""
        self._free.append(row)

    def update(self, rows: np.ndarray, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Score one finite reading for each of ``rows`` (distinct) at event times ``t`` (epoch s)."""
        c = self.config
        smin, smax = self.seen_min[rows], self.seen_max[rows]
        tol = (smax - smin) * c.spatial_tolerance
        outside = (smax > smin) & ((x > smax + tol) | (x < smin - tol))
        self.seen_min[rows] = np.minimum(smin, x)
        self.seen_max[rows] = np.maximum(smax, x)
        seq_raw, tod_raw = self._novelty(rows, x, t)
        score = self.seq.score(rows, seq_raw)
        if c.tod_buckets:
            score = np.maximum(score, self.tod.score(rows, tod_raw))
        score[outside] = 1.0
        n = self.n[rows]
        self.n[rows] = n + 1
        quiet = n < self.quiet_until[rows]
        score[quiet] = 0.0
        alarm = np.flatnonzero(~quiet & (score >= c.rest_level))
        self.quiet_until[rows[alarm]] = n[alarm] + 1 + c.effective_rest_period
        return score

    def _novelty(self, rows: np.ndarray, x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`MetricDetector._novelty` of each row: fractions of novel sequence and daily contexts."""
        c = self.config
        flat = self.tables.reshape(-1)
        n_tables, width = c.tables, self.width
        base = rows * n_tables
        slots = np.uint64(c.table_slots)
        daily = c.tod_buckets > 0
        if daily:
            tod = (((t + c.tod_offset_s) % _DAY_S) * c.tod_buckets / _DAY_S).astype(np.int64)
        seq_novel = np.zeros(len(rows), dtype=np.int64)
        tod_novel = np.zeros(len(rows), dtype=np.int64)
        r = 0
        for v in range(len(c.bins)):
            bins = self.bins[rows, v]
            bins[:, 1:] = bins[:, :-1]
            bins[:, 0] = np.clip(np.floor((x - self.lo[rows]) / self.step[rows, v]), -_BIN_CLIP, _BIN_CLIP)
            self.bins[rows, v] = bins
            keys = bins.view(np.uint64) + np.uint64(7)
            seed = np.full(len(rows), 7919 * (v + 1), dtype=np.uint64)
            seq_novel += self._mark(flat, base + r, seed, keys, c.max_order, slots, width)
            r += c.max_order
            if daily:
                seed = (7919 * (v + 1) + 104729 * (tod + 1)).astype(np.uint64)
                tod_novel += self._mark(flat, base + r, seed, keys, c.tod_order, slots, width)
                r += c.tod_order
        grids = len(c.bins)
        seq = seq_novel / (grids * c.max_order)
        tod_raw = tod_novel / (grids * c.tod_order) if daily and c.tod_order else np.zeros(len(rows))
        return seq, tod_raw

    @staticmethod
    def _mark(flat: np.ndarray, table_rows: np.ndarray, h: np.ndarray, keys: np.ndarray, order: int,
              slots: np.uint64, width: int) -> np.ndarray:
        """`anomaly._mark_contexts` for every row at once: mark the contexts, count those not seen before."""
        novel = np.zeros(len(h), dtype=np.int64)
        mask, prime = np.uint64(_MASK), np.uint64(_PRIME)
        for k in range(order):
            h = (h * prime + keys[:, k]) & mask
            slot = h % slots
            at = (table_rows + k) * width + (slot >> np.uint64(3)).astype(np.int64)
            bit = (np.uint64(1) << (slot & np.uint64(7))).astype(np.uint8)
            byte = flat[at]
            fresh = (byte & bit) == 0
            novel += fresh
            flat[at] = byte | bit
        return novel


class _Equipment:
    """One equipment's streams: a learning reference detector, or a bank row, per metric."""

    __slots__ = ("cross", "metrics", "streams")

    def __init__(self, metrics: tuple[str, ...], streams: dict[str, MetricDetector | int],
                 cross: _CrossMetric | None) -> None:
        self.metrics = metrics
        self.streams = streams
        self.cross = cross


class FleetDetector:
    """An `EquipmentDetector` for every equipment of a shard, scored together (see the module docstring)."""

    def __init__(self, config: AnomalyConfig | None = None) -> None:
        self.config = config or AnomalyConfig()
        self.bank = DetectorBank(self.config)
        self._equipment: dict[Hashable, _Equipment] = {}

    def __contains__(self, key: Hashable) -> bool:
        return key in self._equipment

    def add(self, key: Hashable, metrics: Sequence[str]) -> None:
        """Start detectors for ``key`` that have seen nothing (as ``EquipmentDetector(metrics, config)``)."""
        self.adopt(key, EquipmentDetector(metrics, self.config))

    def adopt(self, key: Hashable, detector: EquipmentDetector) -> None:
        """Take over ``detector`` (restored from a saved state, say) as the detector of ``key``."""
        if detector.config != self.config:
            raise ValueError("the detector's config is not the fleet's")
        self.discard(key)
        streams: dict[str, MetricDetector | int] = {}
        for metric, d in detector._detectors.items():
            streams[metric] = d if d.learning else self.bank.put(d)
        self._equipment[key] = _Equipment(detector.metrics, streams, detector._cross)

    def export(self, key: Hashable) -> EquipmentDetector:
        """The detector of ``key`` as a reference `EquipmentDetector` (a copy, for saving)."""
        eq = self._equipment[key]
        e = EquipmentDetector(eq.metrics, self.config, cross=eq.cross is not None)
        e._detectors = {m: s if isinstance(s, MetricDetector) else self.bank.get(s) for m, s in eq.streams.items()}
        if eq.cross is not None:
            e._cross = _CrossMetric(len(eq.metrics), self.config)
            e._cross.load(eq.cross.to_state())
        return e

    def discard(self, key: Hashable) -> None:
        """Forget the detector of ``key`` (its bank rows go back to the free list)."""
        eq = self._equipment.pop(key, None)
        if eq is not None:
            for s in eq.streams.values():
                if isinstance(s, int):
                    self.bank.release(s)

    def metrics_of(self, key: Hashable) -> tuple[str, ...]:
        return self._equipment[key].metrics

    def score(self, requests: Sequence[tuple[Hashable, float, Mapping[str, float]]]) -> list[dict[str, float]]:
        """``EquipmentDetector.update(readings, ts)`` for each (key, ts, readings), in order per key.

        Returns one result per request, each what the reference would have returned.
        """
        results: list[dict[str, float]] = [{} for _ in requests]
        waves: list[list[int]] = []
        seen: dict[Hashable, int] = {}
        for i, (key, _, readings) in enumerate(requests):
            eq = self._equipment[key]
            if not readings.keys() <= eq.streams.keys():
                unknown = sorted(set(readings) - set(eq.streams))
                raise ValueError(f"unknown metric(s) {unknown}; the detector of {key!r} knows {list(eq.metrics)}")
            w = seen.get(key, 0)
            seen[key] = w + 1
            if w == len(waves):
                waves.append([])
            waves[w].append(i)
        for wave in waves:
            self._score_wave(requests, wave, results)
        return results

    def _score_wave(self, requests: Sequence[tuple[Hashable, float, Mapping[str, float]]], wave: list[int],
                    results: list[dict[str, float]]) -> None:
        rows: list[int] = []
        xs: list[float] = []
        ts: list[float] = []
        where: list[tuple[dict[str, float], str]] = []
        isfinite = math.isfinite
        for i in wave:
            key, t, readings = requests[i]
            eq = self._equipment[key]
            out = results[i]
            for metric, value in readings.items():
                stream = eq.streams[metric]
                if isinstance(stream, MetricDetector):
                    out[metric] = stream.update(value, t)
                    if not stream.learning:
                        eq.streams[metric] = self.bank.put(stream)
                elif isfinite(value) and isfinite(t):
                    rows.append(stream)
                    xs.append(float(value))
                    ts.append(float(t))
                    where.append((out, metric))
                else:
                    out[metric] = 0.0  # as the reference: a non-finite reading changes nothing
        if rows:
            scores = self.bank.update(np.array(rows, dtype=np.int64), np.array(xs), np.array(ts)).tolist()
            for (out, metric), s in zip(where, scores, strict=True):
                out[metric] = s
        for i in wave:
            key, t, readings = requests[i]
            eq = self._equipment[key]
            out = results[i]
            cross = 0.0
            if eq.cross is not None and len(readings) == len(eq.metrics) and isfinite(t):
                vec = [float(readings[m]) for m in eq.metrics]
                if all(isfinite(v) for v in vec):
                    cross = eq.cross.update(vec)
            out[CROSS_KEY] = cross
            out[COMBINED_KEY] = max(out.values())
