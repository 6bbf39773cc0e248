"""Streaming anomaly scores for metric readings: causal, deterministic, bounded memory (pure numpy).

A `MetricDetector` watches one metric stream and turns each reading into an anomaly score in [0, 1],
using only the readings before it. An `EquipmentDetector` runs one detector per metric of an
equipment and adds a cross-metric term. Both are pure: no I/O, no logging, no wall clock (the
timestamp passed in is event time), and the same inputs always give the same scores.

How a reading is scored (``MetricDetector.update``):

1. **Learning.** The first ``learning_period`` readings score 0. They fix the quantiser: the range
   ``[lo, lo + span]`` seen while learning. They are then replayed through step 2 so that the
   context tables start out knowing them. (On NAB this is the 15 % probationary period.)
2. **Context novelty** (the "Contextual Anomaly Detector" / HTM idea, in a hashed form). Each value
   is quantised on several grids (``bins`` levels over the learned span; values outside the span get
   bins outside it). For each grid the last 1..``max_order`` bins form sequence contexts, and the
   last 1..``tod_order`` bins together with the time-of-day bucket form daily contexts. Every
   context is hashed into a fixed-size bit table that remembers "seen before". The raw novelty of a
   reading is the fraction of its contexts never seen before, computed separately for the sequence
   and the daily contexts.
3. **Surprise** (Numenta's "anomaly likelihood"). For each of the two novelty streams, the mean of
   the last ``avg_window`` raw values is compared with an exponentially weighted long-term mean and
   variance of that mean (half-life ``long_halflife``, bias-corrected, started at the end of
   learning): ``tail = Q((avg - mean) / max(std, min_std))`` and the score is
   ``log(tail) / log(1e-10)``, clipped to [0, 1] (0.5 means a tail probability of 1e-5). The
   reading's score is the larger of the two.
4. **Range check.** A value further than ``spatial_tolerance`` of the seen range outside the minimum
   or maximum seen so far scores 1.
5. **Rest period.** After a reported score of at least ``rest_level``, the next ``rest_period``
   readings report 0: one event raises one alarm. The state keeps learning meanwhile.

Memory is fixed when the detector is built and never grows with the number of readings. The bound
per metric, counting the numpy buffers of the state (Python object overhead is extra, a few KiB), is
``AnomalyConfig.memory_bound_bytes()``: ``len(bins) * (max_order + tod_order) * table_slots / 8``
bytes of bit tables + ``2 * 8 * avg_window`` of averaging rings + ``8 * len(bins) * max_order`` of
recent bins + ``16 * learning_period`` of learning buffer (released when learning ends) + 256 of
scalars. With the defaults: 18,432 + 480 + 96 + 12,000 + 256 = 31,264 bytes while learning and
19,264 bytes after. An `EquipmentDetector` of ``k`` metrics adds ``8 * (k * k + 3 * k) + 8 *
avg_window + 256`` bytes for its cross-metric term.

On the Numenta Anomaly Benchmark (NAB v1.1, 58 series) the defaults score 76.6 standard, 70.1
reward-low-FP and 81.2 reward-low-FN (NAB's windowed Gaussian: 39.7; its best published detector,
ARTime: 74.9). The defaults were chosen by tuning on NAB itself, as NAB's published detectors were;
moving any one parameter a step either way scored between 73 and 77. Reproduce with
``python -m bench.nab.score``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "COMBINED_KEY",
    "CROSS_KEY",
    "AnomalyConfig",
    "EquipmentDetector",
    "MetricDetector",
]

COMBINED_KEY = "_combined"
"""Key of `EquipmentDetector.update`'s result holding the equipment's overall score."""
CROSS_KEY = "_cross"
"""Key of `EquipmentDetector.update`'s result holding the cross-metric (Mahalanobis) score."""

_MASK = (1 << 61) - 1
# A value past this many grid steps from the learned range is in the last bin: beyond it the step count
# is no integer a float can tell apart (or, over a range of a few ulps, infinite).
BIN_CLIP = float(2**62)
_PRIME = 1_000_003
_LOG_TAIL_FLOOR = math.log(1e-10)
_SQRT2 = math.sqrt(2.0)
_DAY_S = 86400.0
_STATE_VERSION = 1


@dataclass(frozen=True)
class AnomalyConfig:
    """Parameters of the detectors; the defaults are those scored on NAB (see the module docstring)."""

    learning_period: int = 750
    """Readings used only to learn (scored 0); NAB's probationary period is min(15 % of rows, 750)."""
    bins: tuple[int, ...] = (4, 6, 8)
    """Quantisation grids: number of levels over the range seen while learning."""
    max_order: int = 4
    """Longest sequence context, in readings."""
    tod_buckets: int = 24
    """Time-of-day buckets of the daily contexts; 0 turns daily contexts off."""
    tod_order: int = 2
    """Readings in a daily context (at most ``max_order``)."""
    tod_offset_s: float = 0.0
    """Added to the timestamp before taking the time of day (e.g. 28800 for UTC+8 daily cycles)."""
    table_slots: int = 8192
    """Bits per context table (a multiple of 8)."""
    avg_window: int = 30
    """Readings averaged before the surprise test."""
    long_halflife: float = 500.0
    """Half-life, in readings, of the long-term mean and variance of the averaged novelty."""
    min_std: float = 0.02
    """Floor of the long-term standard deviation of the averaged novelty."""
    spatial_tolerance: float = 0.05
    """A value beyond min/max seen by this fraction of the seen range scores 1."""
    rest_level: float = 0.4
    """A reported score at or above this level starts a rest period."""
    rest_period: int | None = None
    """Readings reported as 0 after an alarm; None means 15 % of ``learning_period`` (at least 1)."""
    cross_ridge: float = 0.05
    """Ridge added to the correlation matrix of the cross-metric term (EquipmentDetector)."""

    def __post_init__(self) -> None:
        if self.learning_period < 2:
            raise ValueError("learning_period must be at least 2")
        if not self.bins or any(b < 1 for b in self.bins):
            raise ValueError("bins must be a non-empty tuple of positive level counts")
        if self.max_order < 1 or not 0 <= self.tod_order <= self.max_order:
            raise ValueError("need max_order >= 1 and 0 <= tod_order <= max_order")
        if self.tod_buckets < 0:
            raise ValueError("tod_buckets must be >= 0")
        if self.table_slots < 8 or self.table_slots % 8:
            raise ValueError("table_slots must be a positive multiple of 8")
        if self.avg_window < 1 or self.long_halflife <= 0 or self.min_std <= 0:
            raise ValueError("need avg_window >= 1, long_halflife > 0 and min_std > 0")
        if self.rest_period is not None and self.rest_period < 0:
            raise ValueError("rest_period must be >= 0")

    @property
    def effective_rest_period(self) -> int:
        """The rest period in readings (``rest_period`` or its default from ``learning_period``)."""
        if self.rest_period is not None:
            return self.rest_period
        return max(1, int(0.15 * self.learning_period))

    @property
    def tables(self) -> int:
        """Number of context bit tables per metric."""
        daily = self.tod_order if self.tod_buckets else 0
        return len(self.bins) * (self.max_order + daily)

    def memory_bound_bytes(self, *, learning: bool = True) -> int:
        """Upper bound of a `MetricDetector`'s numpy state, in bytes (see the module docstring)."""
        total = self.tables * self.table_slots // 8 + 2 * 8 * self.avg_window
        total += 8 * len(self.bins) * self.max_order + 256
        if learning:
            total += 16 * self.learning_period
        return total


def _tail(z: float) -> float:
    """Upper tail probability of the standard normal distribution."""
    return 0.5 * math.erfc(z / _SQRT2)


def _encode(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _decode(s: str, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype=dtype).reshape(shape).copy()


@dataclass
class _Surprise:
    """Anomaly likelihood of a raw [0, 1] stream: short mean against a long-term Gaussian."""

    avg_window: int
    halflife: float
    min_std: float
    ring: list[float] = field(init=False)  # a list: per-item access to numpy scalars costs ~5x more
    pos: int = 0
    total: float = 0.0
    mean: float = 0.0
    var: float = 0.0
    count: int = 0
    alpha: float = field(init=False)

    def __post_init__(self) -> None:
        self.ring = [0.0] * self.avg_window
        self.alpha = 1.0 - 0.5 ** (1.0 / self.halflife)

    def prime(self, raws: Sequence[float]) -> None:
        """Fill the averaging ring with the latest raw values, without touching the statistics."""
        for r in raws[-self.avg_window :]:
            self._push(r)

    def _push(self, raw: float) -> float:
        ring, pos = self.ring, self.pos
        self.total += raw - ring[pos]
        ring[pos] = raw
        pos += 1
        if pos == self.avg_window:
            pos = 0
            self.total = float(np.sum(np.asarray(ring, dtype=np.float64)))  # no drift of the running sum
        self.pos = pos
        return self.total / self.avg_window

    def score(self, raw: float) -> float:
        """Score ``raw`` against the past, then learn from it."""
        avg = self._push(raw)
        if self.count < 10:
            s = 0.0
        else:
            std = max(math.sqrt(self.var), self.min_std)
            s = min(1.0, max(0.0, math.log(_tail((avg - self.mean) / std) + 1e-10) / _LOG_TAIL_FLOOR))
        a = max(self.alpha, 1.0 / (self.count + 1))
        d = avg - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)
        self.count += 1
        return s

    def to_state(self) -> dict[str, Any]:
        return {
            "ring": list(self.ring),
            "pos": self.pos,
            "total": self.total,
            "mean": self.mean,
            "var": self.var,
            "count": self.count,
        }

    def load(self, state: Mapping[str, Any]) -> None:
        ring = [float(x) for x in state["ring"]]
        if len(ring) != self.avg_window:
            raise ValueError("state does not match avg_window of the config")
        self.ring = ring
        self.pos = int(state["pos"])
        self.total = float(state["total"])
        self.mean = float(state["mean"])
        self.var = float(state["var"])
        self.count = int(state["count"])

    def nbytes(self) -> int:
        return 8 * len(self.ring)


def _mark_contexts(rows: Sequence[memoryview], r: int, h: int, bins: Sequence[int], order: int, slots: int) -> int:
    """Mark the contexts of the last 1..``order`` bins (hashes chained from the seed ``h``) seen in the bit
    tables ``rows[r:r + order]``, one table per context length; return how many were not seen before."""
    novel = 0
    for k in range(order):
        h = (h * _PRIME + bins[k] + 7) & _MASK
        slot = h % slots
        row = rows[r + k]
        bit = 1 << (slot & 7)
        byte = row[slot >> 3]
        if not byte & bit:
            novel += 1
            row[slot >> 3] = byte | bit
    return novel


def _table_views(buf: bytearray, tables: int, width: int) -> tuple[np.ndarray, list[memoryview]]:
    """A (tables, width) numpy view of ``buf`` and one memoryview per table, all sharing its bytes."""
    whole = memoryview(buf)
    return (np.frombuffer(buf, dtype=np.uint8).reshape(tables, width),
            [whole[i * width:(i + 1) * width] for i in range(tables)])


class MetricDetector:
    """Anomaly detector of one metric stream (see the module docstring for the method).

    State is fixed-size: at most ``config.memory_bound_bytes()`` bytes of numpy buffers.
    """

    def __init__(self, config: AnomalyConfig | None = None) -> None:
        """Build a detector that has seen nothing yet."""
        c = config or AnomalyConfig()
        self.config = c
        self._n = 0
        self._learn_x = np.zeros(c.learning_period, dtype=np.float64)
        self._learn_t = np.zeros(c.learning_period, dtype=np.float64)
        self._lo = 0.0
        self._span = 1.0
        self._seen_min = math.inf
        self._seen_max = -math.inf
        # The bit tables live in one bytearray, seen by numpy (to save and measure them) and, row by row,
        # through memoryviews (to mark them): indexing a memoryview gives a plain int, ~5x cheaper
        # than a numpy scalar, and marking runs 12 times a reading.
        self._buf = bytearray(c.tables * (c.table_slots // 8))
        self._tables, self._rows = _table_views(self._buf, c.tables, c.table_slots // 8)
        self._bins = np.zeros((len(c.bins), c.max_order), dtype=np.int64)
        self._bin_lists = [[0] * c.max_order for _ in c.bins]
        self._grids: list[tuple[float, float]] = []
        self._seq = _Surprise(c.avg_window, c.long_halflife, c.min_std)
        self._tod = _Surprise(c.avg_window, c.long_halflife, c.min_std)
        self._quiet_until = 0

    # ------------------------------------------------------------------ public

    @property
    def learning(self) -> bool:
        """True while the detector is still in its learning period."""
        return self._n < self.config.learning_period

    @property
    def count(self) -> int:
        """Number of finite readings seen."""
        return self._n

    def update(self, value: float, ts: float) -> float:
        """Score one reading against the readings before it, then learn from it.

        Args:
            value: The reading. A non-finite value (NaN, inf) is ignored: it scores 0 and changes
                nothing.
            ts: Event time of the reading, epoch seconds (used for the time of day only).

        Returns:
            The anomaly score in [0, 1]: 0 while learning and during a rest period, 1 for a value
            outside the range seen so far, otherwise the surprise of the recent context novelty.
        """
        x = float(value)
        t = float(ts)
        if not (math.isfinite(x) and math.isfinite(t)):
            return 0.0
        c = self.config
        n = self._n
        if n < c.learning_period:
            self._learn_x[n] = x
            self._learn_t[n] = t
            self._n = n + 1
            if self._n == c.learning_period:
                self._finish_learning()
            return 0.0

        outside = False
        if self._seen_max > self._seen_min:
            tol = (self._seen_max - self._seen_min) * c.spatial_tolerance
            outside = x > self._seen_max + tol or x < self._seen_min - tol
        self._seen_min = min(self._seen_min, x)
        self._seen_max = max(self._seen_max, x)

        seq_raw, tod_raw = self._novelty(x, t)
        score = self._seq.score(seq_raw)
        if c.tod_buckets:
            score = max(score, self._tod.score(tod_raw))
        if outside:
            score = 1.0
        self._n = n + 1
        if n < self._quiet_until:
            return 0.0
        if score >= c.rest_level:
            self._quiet_until = n + 1 + c.effective_rest_period
        return score

    def nbytes(self) -> int:
        """Bytes held in the numpy buffers of the state (bounded by ``memory_bound_bytes``)."""
        arrays = (self._learn_x, self._learn_t, self._tables, self._bins)
        return sum(a.nbytes for a in arrays) + self._seq.nbytes() + self._tod.nbytes() + 256

    def to_state(self) -> dict[str, Any]:
        """The whole state as JSON-compatible plain data (restore with `from_state`)."""
        self._sync_bins()
        return {
            "version": _STATE_VERSION,
            "config": _config_to_plain(self.config),
            "n": self._n,
            "learn_x": self._learn_x[: self._n].tolist() if self.learning else [],
            "learn_t": self._learn_t[: self._n].tolist() if self.learning else [],
            "lo": self._lo,
            "span": self._span,
            "seen_min": None if math.isinf(self._seen_min) else self._seen_min,
            "seen_max": None if math.isinf(self._seen_max) else self._seen_max,
            "tables": _encode(self._tables),
            "bins": self._bins.tolist(),
            "seq": self._seq.to_state(),
            "tod": self._tod.to_state(),
            "quiet_until": self._quiet_until,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> MetricDetector:
        """Rebuild a detector from `to_state` output; it continues exactly where that one stopped."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported anomaly state version {state.get('version')!r}")
        c = _config_from_plain(state["config"])
        d = cls(c)
        d._n = int(state["n"])
        if d.learning:
            d._learn_x[: d._n] = state["learn_x"]
            d._learn_t[: d._n] = state["learn_t"]
        else:
            d._release_learning_buffers()
        d._lo = float(state["lo"])
        d._span = float(state["span"])
        d._seen_min = math.inf if state["seen_min"] is None else float(state["seen_min"])
        d._seen_max = -math.inf if state["seen_max"] is None else float(state["seen_max"])
        d._buf[:] = _decode(state["tables"], np.uint8, d._tables.shape).tobytes()
        d._bins = np.asarray(state["bins"], dtype=np.int64).reshape(d._bins.shape)
        d._bin_lists = [list(map(int, row)) for row in d._bins]
        d._grids = d._make_grids() if not d.learning else []
        d._seq.load(state["seq"])
        d._tod.load(state["tod"])
        d._quiet_until = int(state["quiet_until"])
        return d

    # ----------------------------------------------------------------- private

    def _make_grids(self) -> list[tuple[float, float]]:
        return [(self._lo, self._span / levels) for levels in self.config.bins]

    def _release_learning_buffers(self) -> None:
        self._learn_x = np.zeros(0, dtype=np.float64)
        self._learn_t = np.zeros(0, dtype=np.float64)

    def _sync_bins(self) -> None:
        for v, row in enumerate(self._bin_lists):
            self._bins[v, :] = row

    def _finish_learning(self) -> None:
        """Fix the quantiser from the learning readings and replay them into the context tables."""
        xs, ts = self._learn_x, self._learn_t
        lo, hi = float(np.min(xs)), float(np.max(xs))
        span = hi - lo
        if not span / max(self.config.bins) > 0.0:  # flat, or so narrow its grid steps would be 0.0
            span = max(abs(lo) * 0.1, 1.0)
        self._lo, self._span = lo, span
        self._seen_min, self._seen_max = lo, hi
        self._grids = self._make_grids()
        seq_raws, tod_raws = [], []
        for x, t in zip(xs.tolist(), ts.tolist(), strict=True):
            s, d = self._novelty(x, t)
            seq_raws.append(s)
            tod_raws.append(d)
        self._seq.prime(seq_raws)
        self._tod.prime(tod_raws)
        self._release_learning_buffers()

    def _novelty(self, x: float, ts: float) -> tuple[float, float]:
        """Fractions of novel sequence contexts and of novel daily contexts of this reading."""
        c = self.config
        rows = self._rows
        slots = c.table_slots
        tod = int(((ts + c.tod_offset_s) % _DAY_S) * c.tod_buckets / _DAY_S) if c.tod_buckets else -1
        seq_novel = tod_novel = 0
        r = 0
        for v, (lo, width) in enumerate(self._grids):
            bins = self._bin_lists[v]
            bins.pop()
            bins.insert(0, math.floor(min(max((x - lo) / width, -BIN_CLIP), BIN_CLIP)))
            seq_novel += _mark_contexts(rows, r, 7919 * (v + 1), bins, c.max_order, slots)
            r += c.max_order
            if tod >= 0:
                tod_novel += _mark_contexts(rows, r, 7919 * (v + 1) + 104729 * (tod + 1), bins, c.tod_order, slots)
                r += c.tod_order
        n_grids = len(self._grids)
        seq = seq_novel / (n_grids * c.max_order)
        daily = tod_novel / (n_grids * c.tod_order) if tod >= 0 and c.tod_order else 0.0
        return seq, daily


class _CrossMetric:
    """Mahalanobis distance of the metrics' standardised residuals, turned into a surprise score.

    Each metric's residual is its distance from its own exponentially weighted mean, in units of its
    own standard deviation; the residual vector is compared with their exponentially weighted
    correlation matrix (plus a ridge). The squared distance is mapped to a normal quantile
    (Wilson-Hilferty approximation of the chi-square law with ``k`` degrees of freedom) and scored by
    the same surprise test as the novelty streams.
    """

    # Plain lists, not numpy: with 2 or 3 metrics a numpy call costs more than the arithmetic it does
    # (measured: the cross-metric term was the largest part of a boiler's evaluation). The updates are
    # numpy's elementwise arithmetic in the same order; only the solve and the dot product may round
    # differently in the last bit.
    def __init__(self, k: int, config: AnomalyConfig) -> None:
        self.k = k
        self.config = config
        self.alpha = 1.0 - 0.5 ** (1.0 / config.long_halflife)
        self.mean = [0.0] * k
        self.var = [0.0] * k
        self.corr = [[1.0 if i == j else 0.0 for j in range(k)] for i in range(k)]
        self.count = 0
        self.surprise = _Surprise(config.avg_window, config.long_halflife, config.min_std)

    def update(self, x: Sequence[float]) -> float:
        """Score the reading vector ``x`` against the past, then learn from it."""
        c = self.config
        a = max(self.alpha, 1.0 / (self.count + 1))
        d = [xi - mi for xi, mi in zip(x, self.mean, strict=True)]
        z = [di / math.sqrt(vi) if vi > 0 else 0.0 for di, vi in zip(d, self.var, strict=True)]
        score = 0.0
        if self.count >= c.learning_period:
            ridge = c.cross_ridge
            m = [[v + ridge if i == j else v for j, v in enumerate(row)] for i, row in enumerate(self.corr)]
            d2 = math.fsum(zi * si for zi, si in zip(z, _solve(m, z), strict=True))
            k = self.k
            q = ((max(d2, 0.0) / k) ** (1.0 / 3.0) - (1.0 - 2.0 / (9.0 * k))) / math.sqrt(2.0 / (9.0 * k))
            score = self.surprise.score(1.0 - _tail(q))
        self.mean = [mi + a * di for mi, di in zip(self.mean, d, strict=True)]
        self.var = [(1.0 - a) * (vi + a * di * di) for vi, di in zip(self.var, d, strict=True)]
        zc = [min(10.0, max(-10.0, zi)) for zi in z]
        if self.count > 0:
            b = 1.0 - a
            self.corr = [[1.0 if i == j else b * v + a * (zc[i] * zc[j]) for j, v in enumerate(row)]
                         for i, row in enumerate(self.corr)]
        self.count += 1
        return score

    def nbytes(self) -> int:
        return 8 * (2 * self.k + self.k * self.k) + self.surprise.nbytes() + 256

    def to_state(self) -> dict[str, Any]:
        return {
            "mean": list(self.mean),
            "var": list(self.var),
            "corr": [list(row) for row in self.corr],
            "count": self.count,
            "surprise": self.surprise.to_state(),
        }

    def load(self, state: Mapping[str, Any]) -> None:
        k = self.k
        mean, var, corr = state["mean"], state["var"], state["corr"]
        if len(mean) != k or len(var) != k or len(corr) != k or any(len(row) != k for row in corr):
            raise ValueError(f"cross-metric state is not for {k} metrics")
        self.mean = [float(v) for v in mean]
        self.var = [float(v) for v in var]
        self.corr = [[float(v) for v in row] for row in corr]
        self.count = int(state["count"])
        self.surprise.load(state["surprise"])


def _solve(m: list[list[float]], b: list[float]) -> list[float]:
    """x with m·x = b: Gaussian elimination with partial pivoting (``m`` is overwritten)."""
    n = len(b)
    rhs = list(b)
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if m[pivot][col] == 0.0:
            raise np.linalg.LinAlgError("singular matrix")
        if pivot != col:
            m[col], m[pivot] = m[pivot], m[col]
            rhs[col], rhs[pivot] = rhs[pivot], rhs[col]
        top = m[col]
        for r in range(col + 1, n):
            f = m[r][col] / top[col]
            if f:
                row = m[r]
                for j in range(col, n):
                    row[j] -= f * top[j]
                rhs[r] -= f * rhs[col]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (rhs[r] - math.fsum(m[r][j] * x[j] for j in range(r + 1, n))) / m[r][r]
    return x


class EquipmentDetector:
    """Anomaly detector of one equipment: one `MetricDetector` per metric plus a cross-metric term.

    ``update`` returns a dict with one score per metric present in the readings, the cross-metric
    score under `CROSS_KEY` (0 unless every metric is present and finite, and while its own learning
    period of complete readings lasts), and under `COMBINED_KEY` the equipment's score: the largest
    of all of them. Its state is bounded: the metrics are fixed when it is built.
    """

    def __init__(self, metrics: Sequence[str], config: AnomalyConfig | None = None, *, cross: bool = True) -> None:
        """Build detectors for ``metrics`` (names, unique); ``cross`` adds the cross-metric term."""
        names = tuple(metrics)
        if not names or len(set(names)) != len(names):
            raise ValueError("metrics must be a non-empty sequence of unique names")
        if COMBINED_KEY in names or CROSS_KEY in names:
            raise ValueError(f"{COMBINED_KEY!r} and {CROSS_KEY!r} are reserved keys")
        self.config = config or AnomalyConfig()
        self.metrics = names
        self._detectors = {m: MetricDetector(self.config) for m in names}
        self._cross = _CrossMetric(len(names), self.config) if cross and len(names) > 1 else None

    def update(self, readings: Mapping[str, float], ts: float) -> dict[str, float]:
        """Score the readings taken at event time ``ts`` (epoch seconds); see the class docstring.

        Raises:
            ValueError: a reading names a metric this equipment was not built with.
        """
        if not readings.keys() <= self._detectors.keys():
            unknown = set(readings) - set(self._detectors)
            raise ValueError(
                f"unknown metric(s) {sorted(unknown)}; this detector knows {list(self.metrics)}: "
                "build the EquipmentDetector with every metric of the equipment"
            )
        out = {m: self._detectors[m].update(v, ts) for m, v in readings.items()}
        cross = 0.0
        if self._cross is not None and len(readings) == len(self.metrics) and math.isfinite(ts):
            vec = [float(readings[m]) for m in self.metrics]
            if all(math.isfinite(v) for v in vec):
                cross = self._cross.update(vec)
        out[CROSS_KEY] = cross
        out[COMBINED_KEY] = max(out.values())
        return out

    def nbytes(self) -> int:
        """Bytes held in the numpy buffers of the whole state."""
        total = sum(d.nbytes() for d in self._detectors.values())
        return total + (self._cross.nbytes() if self._cross is not None else 0)

    def to_state(self) -> dict[str, Any]:
        """The whole state as JSON-compatible plain data (restore with `from_state`)."""
        return {
            "version": _STATE_VERSION,
            "metrics": list(self.metrics),
            "config": _config_to_plain(self.config),
            "detectors": {m: d.to_state() for m, d in self._detectors.items()},
            "cross": self._cross.to_state() if self._cross is not None else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> EquipmentDetector:
        """Rebuild an equipment detector from `to_state` output."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported anomaly state version {state.get('version')!r}")
        e = cls(state["metrics"], _config_from_plain(state["config"]), cross=state["cross"] is not None)
        e._detectors = {m: MetricDetector.from_state(s) for m, s in state["detectors"].items()}
        if e._cross is not None:
            e._cross.load(state["cross"])
        return e


def _config_to_plain(config: AnomalyConfig) -> dict[str, Any]:
    plain = asdict(config)
    plain["bins"] = list(config.bins)
    return plain


def _config_from_plain(plain: Mapping[str, Any]) -> AnomalyConfig:
    values = dict(plain)
    values["bins"] = tuple(values["bins"])
    return AnomalyConfig(**values)
