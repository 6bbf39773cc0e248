"""The anomaly detectors of a whole shard at once: the same scores, one numpy pass per instant (pure).

`alerts.engine.anomaly` scores one reading at a time in Python; that is the reference, and what NAB
scored. Past its learning period a metric's detector there (cost: docs/performance.md) was most of the alert
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
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from alerts.engine.anomaly import (
    _DAY_S,
    _LOG_TAIL_FLOOR,
    _MASK,
    _PRIME,
    _SQRT2,
    BIN_CLIP,
    COMBINED_KEY,
    CROSS_KEY,
    AnomalyConfig,
    EquipmentDetector,
    MetricDetector,
    _CrossMetric,
    _Surprise,
)

__all__ = ["DetectorBank", "FleetDetector"]

_MIN_ROWS = 256
# A checkpoint's change to a stream's bit tables: a byte offset into the equipment's tables (its streams'
# tables one after another, in metric order) and the bits to OR in there. Bits are only ever set, so the
# marks of successive checkpoints apply in any order, and again, on top of the tables last written whole.
TABLE_MARK = np.dtype([("at", "<u4"), ("bits", "u1")])
_MARKED_CHUNKS = 1024  # changed table bytes are merged (deduplicated) past this many chunks

# ``math``'s erfc and log over arrays, value by value (numpy's own may differ in the last bit).
_ERFC = np.frompyfunc(math.erfc, 1, 1)
_LOG = np.frompyfunc(math.log, 1, 1)


def grow_arrays(owner: object, names: Sequence[str], capacity: int) -> None:
    """Give each named array of ``owner`` ``capacity`` rows, keeping what they hold."""
    for name in names:
        old = getattr(owner, name)
        new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
        new[: len(old)] = old
        setattr(owner, name, new)


class _Rows:
    """Row allocation with a free list; arrays grow by doubling (a copy now and then, amortised to nothing)."""

    _arrays: tuple[str, ...] = ()

    def __init__(self, capacity: int) -> None:
        self.size = 0
        self.capacity = capacity
        self._free: list[int] = []

    def _grow(self, capacity: int) -> None:
        grow_arrays(self, self._arrays, capacity)

    def _take(self) -> int:
        if self._free:
            return self._free.pop()
        if self.size == self.capacity:
            self.capacity *= 2
            self._grow(self.capacity)
        self.size += 1
        return self.size - 1

    def release(self, row: int) -> None:
        """Free a row for the next stream."""
        self._free.append(row)


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
        grow_arrays(self, ("ring", "pos", "total", "mean", "var", "count"), capacity)

    def put(self, row: int, s: _Surprise) -> None:
        """Copy a reference `_Surprise` into ``row``."""
        self.ring[row] = s.ring
        self.pos[row] = s.pos
        self.total[row] = s.total
        self.mean[row] = s.mean
        self.var[row] = s.var
        self.count[row] = s.count

    def get(self, row: int, s: _Surprise) -> None:
        """Copy ``row`` into a reference `_Surprise`."""
        s.ring = self.ring[row].tolist()
        s.pos = int(self.pos[row])
        s.total = float(self.total[row])
        s.mean = float(self.mean[row])
        s.var = float(self.var[row])
        s.count = int(self.count[row])

    def score(self, rows: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Score ``raw`` of each row against its past, then learn from it (as `_Surprise.score`)."""
        pos = self.pos[rows]
        total = self.total[rows] + (raw - self.ring[rows, pos])
        self.ring[rows, pos] = raw
        pos += 1
        wrapped = np.flatnonzero(pos == self.window)
        if len(wrapped):
            pos[wrapped] = 0
            # The sum afresh (no drift), all rows at once: numpy sums each row of a C-contiguous array
            # along its last axis as it sums that row alone, pairwise, so the bits are the reference's.
            total[wrapped] = self.ring[rows[wrapped]].sum(axis=1)
        self.pos[rows] = pos
        self.total[rows] = total
        avg = total / self.window
        mean, var, count = self.mean[rows], self.var[rows], self.count[rows]
        z = (avg - mean) / np.maximum(np.sqrt(var), self.min_std)
        s = _LOG(0.5 * _ERFC(z / _SQRT2).astype(np.float64) + 1e-10).astype(np.float64) / _LOG_TAIL_FLOOR
        s = np.where(s > 0.0, s, 0.0)  # max(0.0, s) and min(1.0, s) as the reference has them, NaN and -0.0 too
        s = np.where(s < 1.0, s, 1.0)
        s[count < 10] = 0.0
        a = np.maximum(self.alpha, 1.0 / (count + 1))
        d = avg - mean
        self.mean[rows] = mean + a * d
        self.var[rows] = (1.0 - a) * (var + a * d * d)
        self.count[rows] = count + 1
        return s


class DetectorBank(_Rows):
    """The state of many `MetricDetector`s past learning, a row each, updated together.

    Rows are taken with `put` (a detector whose learning has ended) and given back with `get`.
    """

    _arrays = ("tables", "bins", "lo", "span", "step", "seen_min", "seen_max", "n", "quiet_until", "tables_whole")

    def __init__(self, config: AnomalyConfig, capacity: int = _MIN_ROWS) -> None:
        super().__init__(capacity)
        c = self.config = config
        self.width = c.table_slots // 8
        self.tables = np.zeros((capacity, c.tables, self.width), dtype=np.uint8)
        self.bins = np.zeros((capacity, len(c.bins), c.max_order), dtype=np.int64)
        self.lo = np.zeros(capacity)
        self.span = np.zeros(capacity)
        self.step = np.zeros((capacity, len(c.bins)))  # grid widths: span / levels
        self.seen_min = np.zeros(capacity)
        self.seen_max = np.zeros(capacity)
        self.n = np.zeros(capacity, dtype=np.int64)
        self.quiet_until = np.zeros(capacity, dtype=np.int64)
        # Rows whose bit tables a checkpoint must write whole (a stream just put here); the others' changes
        # are the bytes in ``marked`` (flat indices into ``tables``): past learning a reading marks a context
        # never seen before only now and then, and then one byte of 3 KB changes.
        self.tables_whole = np.zeros(capacity, dtype=bool)
        self.marked: list[np.ndarray] = []
        self.seq = _SurpriseRows(c, capacity)
        self.tod = _SurpriseRows(c, capacity)

    def _grow(self, capacity: int) -> None:
        super()._grow(capacity)
        self.seq.grow(capacity)
        self.tod.grow(capacity)

    def put(self, detector: MetricDetector) -> int:
        """Take over a detector past its learning period; returns its row."""
        if detector.learning:
            raise ValueError("only a detector past its learning period goes into the bank")
        if detector.config != self.config:
            raise ValueError("the detector's config is not the bank's")
        row = self._take()
        self.tables[row] = detector._tables
        self.bins[row] = np.asarray(detector._bin_lists, dtype=np.int64)
        self.lo[row] = detector._lo
        self.span[row] = detector._span
        self.step[row] = [width for _, width in detector._grids]
        self.seen_min[row] = detector._seen_min
        self.seen_max[row] = detector._seen_max
        self.n[row] = detector._n
        self.quiet_until[row] = detector._quiet_until
        self.tables_whole[row] = True
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
        """`MetricDetector._novelty` of each row: fractions of novel sequence and daily contexts.

        Every grid at once (its tables are its own): each array operation covers (rows, grids).
        """
        c = self.config
        grids, daily = len(c.bins), c.tod_buckets > 0
        bins = self.bins[rows]  # (rows, grids, max_order): each grid's latest bins, newest first
        bins[:, :, 1:] = bins[:, :, :-1]
        with np.errstate(over="ignore"):  # steps past the float range: clipped to the last bin, as the reference
            steps = (x - self.lo[rows])[:, None] / self.step[rows]
        bins[:, :, 0] = np.clip(np.floor(steps), -BIN_CLIP, BIN_CLIP)
        self.bins[rows] = bins
        keys = bins.view(np.uint64) + np.uint64(7)
        # A grid's tables: max_order of sequence contexts, then (daily) tod_order of daily ones.
        per_grid = c.max_order + (c.tod_order if daily else 0)
        first = rows[:, None] * c.tables + np.arange(grids) * per_grid  # (rows, grids)
        grid_seeds = 7919 * (np.arange(grids, dtype=np.uint64) + np.uint64(1))
        seed = np.broadcast_to(grid_seeds, first.shape)
        seq_novel = self._mark(first, seed, keys, c.max_order)
        seq = seq_novel / (grids * c.max_order)
        if daily and c.tod_order:
            tod = (((t + c.tod_offset_s) % _DAY_S) * c.tod_buckets / _DAY_S).astype(np.int64)
            seed = grid_seeds + (104729 * (tod + 1)).astype(np.uint64)[:, None]
            tod_novel = self._mark(first + c.max_order, seed, keys, c.tod_order)
            return seq, tod_novel / (grids * c.tod_order)
        return seq, np.zeros(len(rows))

    def _mark(self, tables: np.ndarray, h: np.ndarray, keys: np.ndarray, order: int) -> np.ndarray:
        """`anomaly._mark_contexts` for every row and grid at once: mark the contexts of the first ``order``
        bins, in the tables from ``tables`` on; count per row those not seen before."""
        flat = self.tables.reshape(-1)
        width, slots = self.width, np.uint64(self.config.table_slots)
        novel = np.zeros(tables.shape, dtype=np.int64)
        mask, prime, one = np.uint64(_MASK), np.uint64(_PRIME), np.uint64(1)
        for k in range(order):
            h = (h * prime + keys[:, :, k]) & mask
            # h % slots; a mask when slots is a power of two (the engine's 2048): 9 times cheaper, same bits
            slot = h & (slots - one) if slots & (slots - one) == 0 else h % slots
            at = (tables + k) * width + (slot >> np.uint64(3)).astype(np.int64)
            bit = (one << (slot & np.uint64(7))).astype(np.uint8)
            byte = flat[at]
            fresh = (byte & bit) == 0
            novel += fresh
            flat[at] = byte | bit
            if fresh.any():
                self.marked.append(at[fresh])
        if len(self.marked) > _MARKED_CHUNKS:  # bounded by the tables' size, checkpointed or not
            self.marked = [np.unique(np.concatenate(self.marked))]
        counts: np.ndarray = novel.sum(axis=1)  # numpy's stubs type a reduction along an axis as Any
        return counts

    def take_marked(self) -> np.ndarray:
        """The flat indices of the table bytes changed since the last call, sorted, once each."""
        marked = np.unique(np.concatenate(self.marked)) if self.marked else np.zeros(0, dtype=np.int64)
        self.marked = []
        return marked


class CrossBank(_Rows):
    """`anomaly._CrossMetric` of many equipment with ``k`` metrics (2 or 3), a row each, updated together.

    The reference solves by Gaussian elimination with partial pivoting and sums with ``math.fsum``;
    here the same elimination runs on every row at once, and ``fsum`` is kept where it differs from
    plain addition (three terms or more), value by value.
    """

    _arrays = ("mean", "var", "corr", "count")

    def __init__(self, k: int, config: AnomalyConfig, capacity: int = _MIN_ROWS) -> None:
        if not 2 <= k <= 3:
            raise ValueError("the bank's cross-metric term is for 2 or 3 metrics; keep the reference for more")
        super().__init__(capacity)
        self.k, self.config = k, config
        self.alpha = 1.0 - 0.5 ** (1.0 / config.long_halflife)
        self.mean = np.zeros((capacity, k))
        self.var = np.zeros((capacity, k))
        self.corr = np.zeros((capacity, k, k))
        self.count = np.zeros(capacity, dtype=np.int64)
        self.surprise = _SurpriseRows(config, capacity)

    def _grow(self, capacity: int) -> None:
        super()._grow(capacity)
        self.surprise.grow(capacity)

    def put(self, cross: _CrossMetric) -> int:
        """Take over a reference cross-metric term; returns its row."""
        if cross.k != self.k:
            raise ValueError(f"a term of {cross.k} metrics does not go into a bank of {self.k}")
        row = self._take()
        self.mean[row] = cross.mean
        self.var[row] = cross.var
        self.corr[row] = cross.corr
        self.count[row] = cross.count
        self.surprise.put(row, cross.surprise)
        return row

    def get(self, row: int) -> _CrossMetric:
        """The row as a reference term (a copy)."""
        cross = _CrossMetric(self.k, self.config)
        cross.mean = self.mean[row].tolist()
        cross.var = self.var[row].tolist()
        cross.corr = self.corr[row].tolist()
        cross.count = int(self.count[row])
        self.surprise.get(row, cross.surprise)
        return cross

    def update(self, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Score the finite reading vectors ``x`` (one per row, shape (len(rows), k)); see `_CrossMetric.update`."""
        c, k = self.config, self.k
        count, mean, var = self.count[rows], self.mean[rows], self.var[rows]
        a = np.maximum(self.alpha, 1.0 / (count + 1))
        d = x - mean
        positive = var > 0
        z = np.where(positive, d / np.sqrt(np.where(positive, var, 1.0)), 0.0)
        score = np.zeros(len(rows))
        learned = np.flatnonzero(count >= c.learning_period)
        if len(learned):
            m = self.corr[rows[learned]]
            m[:, np.arange(k), np.arange(k)] += c.cross_ridge  # the diagonal only: v + 0.0 may flip a zero's sign
            zl = z[learned]
            solved = _solve_rows(m, zl)
            fsum = math.fsum
            d2 = [fsum(p) for p in (zl * solved).tolist()]
            shift, scale = 1.0 - 2.0 / (9.0 * k), math.sqrt(2.0 / (9.0 * k))
            erfc = math.erfc
            raw = [1.0 - 0.5 * erfc((((max(v, 0.0) / k) ** (1.0 / 3.0) - shift) / scale) / _SQRT2) for v in d2]
            score[learned] = self.surprise.score(rows[learned], np.array(raw))
        ak = a[:, None]
        self.mean[rows] = mean + ak * d
        self.var[rows] = (1.0 - ak) * (var + ak * d * d)
        zc = np.minimum(10.0, np.maximum(-10.0, z))
        later = np.flatnonzero(count > 0)
        if len(later):
            al, bl = a[later, None, None], 1.0 - a[later, None, None]
            corr = bl * self.corr[rows[later]] + al * (zc[later, :, None] * zc[later, None, :])
            corr[:, np.arange(k), np.arange(k)] = 1.0
            self.corr[rows[later]] = corr
        self.count[rows] = count + 1
        return score


def _solve_rows(m: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`anomaly._solve` on every row at once: x with m·x = b, for (n, k, k) ``m`` and (n, k) ``b``, k <= 3
    (so the back substitution sums at most two terms, where ``fsum`` and plain addition agree)."""
    m, rhs = m.copy(), b.copy()
    n, k = rhs.shape
    every = np.arange(n)
    for col in range(k):
        pivot = col + np.argmax(np.abs(m[:, col:, col]), axis=1)  # the first largest, as max() takes it
        if np.any(m[every, pivot, col] == 0.0):
            raise np.linalg.LinAlgError("singular matrix")
        swap = np.flatnonzero(pivot != col)
        if len(swap):
            p = pivot[swap]
            m[swap, col], m[swap, p] = m[swap, p].copy(), m[swap, col].copy()
            rhs[swap, col], rhs[swap, p] = rhs[swap, p].copy(), rhs[swap, col].copy()
        top = m[:, col]
        for r in range(col + 1, k):
            f = m[:, r, col] / top[:, col]
            nz = f != 0.0  # the reference skips a zero factor: rows stay bit for bit as they were
            m[:, r, col:] = np.where(nz[:, None], m[:, r, col:] - f[:, None] * top[:, col:], m[:, r, col:])
            rhs[:, r] = np.where(nz, rhs[:, r] - f * rhs[:, col], rhs[:, r])
    x = np.zeros_like(rhs)
    for r in range(k - 1, -1, -1):
        if r == k - 1:
            x[:, r] = (rhs[:, r] - 0.0) / m[:, r, r]
            continue
        acc = m[:, r, r + 1] * x[:, r + 1]
        for j in range(r + 2, k):
            acc = acc + m[:, r, j] * x[:, j]
        x[:, r] = (rhs[:, r] - acc) / m[:, r, r]
    return x


def _stream_rows(bank: DetectorBank, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's values past its tables: floats (lo, span, steps, seen min/max, then each surprise's ring,
    total, mean, var) and ints (n, quiet_until, bins, then each surprise's pos and count). The daily
    surprise is left out when it is as new in every row (daily contexts off: it never moves), a third of it."""
    s, t = bank.seq, bank.tod
    daily = not _untouched(t, rows)
    floats = np.hstack([bank.lo[rows, None], bank.span[rows, None], bank.step[rows], bank.seen_min[rows, None],
                        bank.seen_max[rows, None], s.ring[rows], s.total[rows, None], s.mean[rows, None],
                        s.var[rows, None],
                        *((t.ring[rows], t.total[rows, None], t.mean[rows, None], t.var[rows, None]) if daily else ())])
    ints = np.hstack([bank.n[rows, None], bank.quiet_until[rows, None], bank.bins[rows].reshape(len(rows), -1),
                      s.pos[rows, None], s.count[rows, None],
                      *((t.pos[rows, None], t.count[rows, None]) if daily else ())])
    return floats, ints


def _untouched(s: _SurpriseRows, rows: np.ndarray) -> bool:
    """Whether the surprise of every row is as a new one's: all zero bits (so no -0.0 either)."""
    return not any(np.any(a[rows].view(np.int64)) for a in (s.ring, s.total, s.mean, s.var, s.pos, s.count))


def _cross_rows(bank: CrossBank, rows: np.ndarray) -> np.ndarray:
    """Each cross-metric row as floats: mean, var, corr, count, then its surprise's ring, total, mean, var,
    pos, count (counts and positions are small integers: exact as float64)."""
    s = bank.surprise
    n = len(rows)
    return np.hstack([bank.mean[rows], bank.var[rows], bank.corr[rows].reshape(n, -1), bank.count[rows, None],
                      s.ring[rows], s.total[rows, None], s.mean[rows, None], s.var[rows, None], s.pos[rows, None],
                      s.count[rows, None]]).astype(np.float64)


def _load_surprise(s: _Surprise, floats: Sequence[float], ints: Sequence[int]) -> None:
    """Load a surprise's ring, total, mean, var (``floats``) and pos, count (``ints``)."""
    w = s.avg_window
    s.ring = [float(v) for v in floats[:w]]
    s.total, s.mean, s.var = float(floats[w]), float(floats[w + 1]), float(floats[w + 2])
    s.pos, s.count = int(ints[0]), int(ints[1])


class BankedCheckpoint(NamedTuple):
    """One equipment's banked detector as `FleetDetector.checkpoint` gives it."""

    plain: list[Any]  # metrics, stream floats, stream ints, cross-metric floats (None: no term)
    tables: bytes | None  # every stream's bit tables, whole (None: not written whole this time)
    marks: bytes | None  # `TABLE_MARK` records of the bytes changed since the last checkpoint (None: none)


class _Equipment:
    """One equipment's streams: a learning reference detector, or a bank row, per metric."""

    __slots__ = ("cross", "metrics", "streams")

    def __init__(self, metrics: tuple[str, ...], streams: dict[str, MetricDetector | int],
                 cross: _CrossMetric | int | None) -> None:
        self.metrics = metrics
        self.streams = streams
        self.cross = cross


class FleetDetector:
    """An `EquipmentDetector` for every equipment of a shard, scored together (see the module docstring)."""

    def __init__(self, config: AnomalyConfig | None = None) -> None:
        self.config = config or AnomalyConfig()
        self.bank = DetectorBank(self.config)
        self.cross_banks = {k: CrossBank(k, self.config) for k in (2, 3)}
        self._equipment: dict[Hashable, _Equipment] = {}
        self._marks_bytes: dict[Hashable, int] = {}  # per key, its table marks checkpointed since its whole tables

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
        cross: _CrossMetric | int | None = detector._cross
        if detector._cross is not None and detector._cross.k in self.cross_banks:
            cross = self.cross_banks[detector._cross.k].put(detector._cross)
        self._equipment[key] = _Equipment(detector.metrics, streams, cross)

    def export(self, key: Hashable) -> EquipmentDetector:
        """The detector of ``key`` as a reference `EquipmentDetector` (a copy, for saving)."""
        eq = self._equipment[key]
        e = EquipmentDetector(eq.metrics, self.config, cross=eq.cross is not None)
        e._detectors = {m: s if isinstance(s, MetricDetector) else self.bank.get(s) for m, s in eq.streams.items()}
        if isinstance(eq.cross, int):
            e._cross = self.cross_banks[len(eq.metrics)].get(eq.cross)
        elif eq.cross is not None:
            e._cross = _CrossMetric(len(eq.metrics), self.config)
            e._cross.load(eq.cross.to_state())
        return e

    def discard(self, key: Hashable) -> None:
        """Forget the detector of ``key`` (its bank rows go back to the free list)."""
        eq = self._equipment.pop(key, None)
        self._marks_bytes.pop(key, None)
        if eq is not None:
            for s in eq.streams.values():
                if isinstance(s, int):
                    self.bank.release(s)
            if isinstance(eq.cross, int):
                self.cross_banks[len(eq.metrics)].release(eq.cross)

    def metrics_of(self, key: Hashable) -> tuple[str, ...]:
        return self._equipment[key].metrics

    def banked(self, key: Hashable) -> tuple[tuple[str, ...], tuple[int, ...], int | None] | None:
        """The metrics of ``key``'s detector, their `bank` rows and its cross-metric term's row in
        ``cross_banks[len(metrics)]`` (None: it has none), once every stream is in the bank: then scoring
        it is updating those rows alone. Else None."""
        eq = self._equipment.get(key)
        if eq is None or not (eq.cross is None or isinstance(eq.cross, int)):
            return None
        rows = tuple(r for m in eq.metrics if isinstance(r := eq.streams[m], int))
        if len(rows) != len(eq.metrics):
            return None
        return eq.metrics, rows, eq.cross

    def checkpoint(self, keys: Sequence[Hashable]) -> dict[Hashable, BankedCheckpoint]:
        """The detectors of ``keys`` whose every stream (and cross-metric term) is in the banks, as their rows'
        values in bytes (float64 and int64, exact), gathered from the arrays at once (the others: `export`
        them). Their bit tables come whole (in metric order) when a stream was just put in the bank or its
        marks since the last whole write would outgrow them, else as the marks (`TABLE_MARK` records) of the
        bytes changed since the last checkpoint, or not at all when none did. `restore_banked` reverses it."""
        found: list[tuple[Hashable, tuple[str, ...], tuple[int, ...], int | None]] = []
        for key in keys:
            banked = self.banked(key)
            if banked is not None:
                found.append((key, *banked))
        bank = self.bank
        marked = bank.take_marked()  # every changed byte belongs to a key here: a scored equipment is dirty
        if not found:
            return {}
        rows = np.array([r for _, _, streams, _ in found for r in streams], dtype=np.int64)
        floats, ints = _stream_rows(bank, rows)
        fw, iw = floats.shape[1] * 8, ints.shape[1] * 8
        float_bytes, int_bytes = floats.tobytes(), ints.tobytes()
        whole = bank.tables_whole[rows].tolist()
        bank.tables_whole[rows] = False
        table_width = bank.tables.shape[1] * bank.tables.shape[2]
        marks = self._marks_of(found, rows, marked, table_width)
        cross_bytes: dict[int, bytes] = {}
        for k, cross_bank in self.cross_banks.items():
            mine = [i for i, (_, metrics, _, row) in enumerate(found) if row is not None and len(metrics) == k]
            if mine:
                values = _cross_rows(cross_bank, np.array([found[i][3] for i in mine], dtype=np.int64))
                width = values.shape[1] * 8
                cross_blob = values.tobytes()
                for j, i in enumerate(mine):
                    cross_bytes[i] = cross_blob[j * width:(j + 1) * width]
        out: dict[Hashable, BankedCheckpoint] = {}
        at = 0
        tables = bank.tables
        marks_bytes = self._marks_bytes
        for i, (key, metrics, streams, _) in enumerate(found):
            n = len(streams)
            blob: bytes | None = None
            mine_marks: bytes | None = None
            mark = marks.get(i)
            if any(whole[at:at + n]) or (mark is not None and marks_bytes.get(key, 0) + len(mark) > n * table_width):
                blob = tables[list(streams)].tobytes()
                marks_bytes[key] = 0
            elif mark is not None:
                mine_marks = mark
                marks_bytes[key] = marks_bytes.get(key, 0) + len(mark)
            out[key] = BankedCheckpoint([list(metrics), float_bytes[at * fw:(at + n) * fw],
                                         int_bytes[at * iw:(at + n) * iw], cross_bytes.get(i)], blob, mine_marks)
            at += n
        return out

    def _marks_of(self, found: Sequence[tuple[Hashable, tuple[str, ...], tuple[int, ...], int | None]],
                  rows: np.ndarray, marked: np.ndarray, table_width: int) -> dict[int, bytes]:
        """The changed table bytes ``marked`` as `TABLE_MARK` records, by index in ``found`` (rows of a stream
        released since are not among ``rows``: dropped)."""
        if not len(marked):
            return {}
        owner = np.full(self.bank.capacity, -1, dtype=np.int64)  # bank row -> its position in ``rows``
        owner[rows] = np.arange(len(rows))
        row_of, offset = np.divmod(marked, table_width)
        position = owner[row_of]
        kept = position >= 0
        marked, offset, position = marked[kept], offset[kept], position[kept]
        counts = [len(streams) for _, _, streams, _ in found]
        equipment_of = np.repeat(np.arange(len(found)), counts)  # position in ``rows`` -> index in ``found``
        first = np.cumsum([0, *counts[:-1]])  # each equipment's first position in ``rows``
        eq = equipment_of[position]
        records = np.empty(len(marked), dtype=TABLE_MARK)
        records["at"] = (position - first[eq]) * table_width + offset
        records["bits"] = self.bank.tables.reshape(-1)[marked]
        order = np.argsort(eq, kind="stable")
        eq, records = eq[order], records[order]
        bounds = np.flatnonzero(np.diff(eq)) + 1
        starts = [0, *bounds.tolist()]
        ends = [*bounds.tolist(), len(eq)]
        data = records.tobytes()
        size = TABLE_MARK.itemsize
        return {int(eq[s]): data[s * size:e * size] for s, e in zip(starts, ends, strict=True)}

    def restore_banked(self, key: Hashable, plain: Sequence[Any], tables: bytes, marks: bytes = b"") -> None:
        """Take over the detector `checkpoint` gave as ``plain``, ``tables`` (last written whole) and ``marks``
        (every checkpoint's since, in any order); ValueError when they do not fit."""
        metrics, float_bytes, int_bytes, cross = plain
        c = self.config
        width = c.tables * (c.table_slots // 8)
        n = len(metrics)
        if marks:
            if len(marks) % TABLE_MARK.itemsize:
                raise ValueError("checkpointed table marks are cut short")
            records = np.frombuffer(marks, dtype=TABLE_MARK)
            if len(tables) != width * n or (len(records) and int(records["at"].max()) >= len(tables)):
                raise ValueError("checkpointed table marks do not fit the tables")
            merged = np.frombuffer(tables, dtype=np.uint8).copy()
            np.bitwise_or.at(merged, records["at"].astype(np.int64), records["bits"])
            tables = merged.tobytes()
        floats = np.frombuffer(float_bytes, dtype=np.float64)
        ints = np.frombuffer(int_bytes, dtype=np.int64)
        g, o, w = len(c.bins), c.max_order, c.avg_window
        fw, iw = 2 + g + 2 + 2 * (w + 3), 2 + g * o + 4
        if floats.size == (fw - (w + 3)) * n and ints.size == (iw - 2) * n:  # the daily surprise as new (left out)
            fw, iw = fw - (w + 3), iw - 2
        if len(tables) != width * n or floats.size != fw * n or ints.size != iw * n:
            raise ValueError("a checkpointed anomaly detector does not fit this engine's configuration")
        e = EquipmentDetector(metrics, c, cross=cross is not None)
        for j, metric in enumerate(metrics):
            f = floats[j * fw:(j + 1) * fw].tolist()
            i = ints[j * iw:(j + 1) * iw].tolist()
            d = MetricDetector(c)
            d._release_learning_buffers()
            d._lo, d._span = f[0], f[1]
            d._grids = [(d._lo, step) for step in f[2:2 + g]]
            d._seen_min, d._seen_max = f[2 + g], f[3 + g]
            _load_surprise(d._seq, f[4 + g:4 + g + w + 3], i[2 + g * o:4 + g * o])
            if len(f) > 4 + g + w + 3:
                _load_surprise(d._tod, f[4 + g + w + 3:], i[4 + g * o:])
            d._n, d._quiet_until = i[0], i[1]
            d._bin_lists = [i[2 + v * o:2 + (v + 1) * o] for v in range(g)]
            d._sync_bins()
            d._buf[:] = tables[j * width:(j + 1) * width]
            if d.learning:
                raise ValueError("a checkpointed banked stream is past learning")
            e._detectors[metric] = d
        if cross is not None:
            assert e._cross is not None
            k = e._cross.k
            values = np.frombuffer(cross, dtype=np.float64).tolist()
            if len(values) != 2 * k + k * k + w + 6:
                raise ValueError("a checkpointed cross-metric term does not fit this engine's configuration")
            e._cross.mean, e._cross.var = values[:k], values[k:2 * k]
            e._cross.corr = [values[2 * k + r * k:2 * k + (r + 1) * k] for r in range(k)]
            rest = values[2 * k + k * k:]
            e._cross.count = int(rest[0])
            _load_surprise(e._cross.surprise, rest[1:w + 4], [int(rest[w + 4]), int(rest[w + 5])])
        self.adopt(key, e)
        # The checkpoint holds these tables already: the next one need not write them again.
        self.bank.tables_whole[[s for s in self._equipment[key].streams.values() if isinstance(s, int)]] = False
        self._marks_bytes[key] = len(marks)

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
        banked: dict[int, tuple[list[int], list[list[float]], list[dict[str, float]]]] = {}
        for i in wave:
            key, t, readings = requests[i]
            eq = self._equipment[key]
            out = results[i]
            out[CROSS_KEY] = 0.0
            if eq.cross is not None and len(readings) == len(eq.metrics) and isfinite(t):
                vec = [float(readings[m]) for m in eq.metrics]
                if all(isfinite(v) for v in vec):
                    if isinstance(eq.cross, int):
                        rows_k, vecs, outs = banked.setdefault(len(vec), ([], [], []))
                        rows_k.append(eq.cross)
                        vecs.append(vec)
                        outs.append(out)
                    else:
                        out[CROSS_KEY] = eq.cross.update(vec)
        for k, (rows_k, vecs, outs) in banked.items():
            for out, s in zip(outs, self.cross_banks[k].update(np.array(rows_k), np.array(vecs)).tolist(),
                              strict=True):
                out[CROSS_KEY] = s
        for i in wave:
            out = results[i]
            out[COMBINED_KEY] = max(out.values())
