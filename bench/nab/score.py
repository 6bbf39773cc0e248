"""Score streaming anomaly detectors on the Numenta Anomaly Benchmark (NAB v1.1), our own implementation.

Run from the repository root::

    python -m bench.nab.score [--data DIR] [--detectors safewatch,null,windowed_gaussian] [--jobs N]

The data directory (``data/<category>/<file>.csv`` and ``labels/combined_windows.json``) is found, in
order, from ``--data``, the environment variable ``SAFEWATCH_NAB_DIR``, or ``shared/datasets/nab``
beside the repository. ``--nab-results DIR --detector-name NAME`` scores result CSVs written by NAB
itself (``<DIR>/<category>/<NAME>_<file>.csv`` with an ``anomaly_score`` column) instead of running
detectors; that is how this scorer was checked against NAB's published ``final_results.json``.
``--per-file`` adds one line per file (windows detected, FP rows, file score) for the standard profile.

Which NAB rule each part implements (the rules are those of NAB's ``nab/sweeper.py``, ``scorer.py``,
``optimizer.py`` and ``runner.py``; where this file had to choose, the choice is said):

* **Windows** (``load_windows``): the ground truth is ``labels/combined_windows.json``. Each window is a
  pair of timestamps that are exact rows of the file; both ends are inside. Every row inside a window
  is "anomalous".
* **Probationary period** (``probation_length``): the first ``min(floor(0.15 * rows), 0.15 * 5000)``
  rows of each file. Rows there are never scored: neither a detection nor a window row there counts.
  A detector may use them to learn (NAB hands the same number to its detectors).
* **Detections**: a row is a detection when its score is ``>= threshold``. Scores are first rounded to
  12 decimals (``as_nab_scores``), as NAB's result files carry them (NAB reads scores back from CSV).
* **Scaled sigmoid** (``scaled_sigmoid``): ``sigma(y) = 2 / (1 + exp(5 y)) - 1``, and ``-1`` when
  ``y > 3``.
* **True positives** (``row_weights``): a row ``i`` inside a window ``[L, R]`` of width
  ``W = R - L + 1`` has relative position ``y = -(R - i + 1) / W`` (``-1`` at the left edge) and weight
  ``A_TP * sigma(y) / sigma(-1)``, so a detection at the left edge earns exactly ``A_TP`` and one at
  the right edge earns ``A_TP * sigma(-1/W) / sigma(-1)``, close to 0. Only the best-weighted (in
  practice the earliest) detection of a window counts: the window's score is
  ``max(-A_FN, best detection weight)``.
* **False negatives**: a window with no detection scores ``-A_FN``.
* **False positives** (``row_weights``): a detection outside every window costs ``A_FP * sigma(y)``
  (negative) with ``y = |i - R_prev| / (W_prev - 1)`` measured from the right edge ``R_prev`` of the
  previous window of the same file (so an FP just after a window costs almost nothing and one far
  after costs the full ``A_FP``); before the file's first window every FP costs the full ``-A_FP``.
  Every detected row outside windows counts, not only the first of a run.
* **True negatives** earn nothing (NAB's ``tnWeight`` is read but unused).
* **Profiles** (``PROFILES``, NAB's ``config/profiles.json``): standard ``A_TP=1, A_FP=0.11,
  A_FN=1``; reward_low_FP_rate ``A_TP=1, A_FP=0.22, A_FN=1``; reward_low_FN_rate ``A_TP=1, A_FP=0.11,
  A_FN=2``.
* **Threshold optimisation** (``optimise_threshold``): for each detector and profile NAB picks the one
  threshold, common to the whole corpus, that maximises the corpus total. Every distinct score value
  is a candidate, and so is "above every score" (no detection at all, NAB's 1.1). On ties of the total
  the highest threshold wins, as NAB's stable sort keeps the first (highest) one.
* **Normalisation** (``normalise``): ``100 * (S - S_null) / (S_perfect - S_null)`` with
  ``S_perfect = A_TP * number_of_windows`` (116 for v1.1) and ``S_null`` the total of the null detector
  (no detection: ``-A_FN * number_of_windows``). NAB computes ``S_null`` by scoring its null detector;
  here the null total is computed directly, and the null detector is also run as a check that it
  gives 0.
* **Our detector** (``safewatch``): ``alerts.engine.anomaly.MetricDetector`` with its default
  configuration except ``learning_period`` = the file's probationary length (NAB gives its detectors
  the same number), fed ``(value, epoch seconds)`` one row at a time.
* **Baselines**: ``null`` emits a constant score (NAB: 0.5; here 0.0, which scores the same because
  the optimiser then chooses "no detection"); ``windowed_gaussian`` is NAB's windowed Gaussian (a
  window of 6400 past values refreshed every 100 rows; score ``1 - Q(|x - mean| / std)``), which NAB
  reports at 39.65 standard, 20.87 low-FP and 47.41 low-FN.

Check of this scorer: on the result files NAB publishes (``results/<detector>/`` of numenta/NAB at
commit ea702d7), ``--nab-results`` gives windowedGaussian 39.65 / 20.87 / 47.41, contextOSE 69.90 /
66.98 / 73.18, ARTime 74.85 / 65.15 / 80.36 and numenta 70.10 / 63.21 / 74.32 (standard / low FP /
low FN), equal to NAB's ``final_results.json`` to two decimals except numenta low-FP, where NAB
reports 63.12: its stored threshold for that profile (0.5752) is not the optimum of its own stored
scores, and ours (the optimum) scores 0.09 higher.

Interpretation notes: NAB uses Python floats and sums in its own order; totals here agree with NAB to
rounding error. NAB's perfect score counts the entries of the label file it is given (the windows
file), which is what ``number_of_windows`` is.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alerts.engine.anomaly import AnomalyConfig, MetricDetector

__all__ = [
    "PROFILES",
    "CorpusScore",
    "LabelledSeries",
    "Profile",
    "as_nab_scores",
    "load_corpus",
    "main",
    "normalise",
    "optimise_threshold",
    "probation_length",
    "row_weights",
    "scaled_sigmoid",
]

PROBATION_PERCENT = 0.15
DEFAULT_DETECTORS = ("safewatch", "null", "windowed_gaussian")


@dataclass(frozen=True)
class Profile:
    """One NAB application profile (the cost matrix)."""

    name: str
    tp: float
    fp: float
    fn: float


PROFILES: tuple[Profile, ...] = (
    Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0),
    Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0),
)


@dataclass(frozen=True)
class LabelledSeries:
    """One data file with its windows as (first row, last row) index pairs, both inclusive."""

    name: str
    timestamps: np.ndarray  # epoch seconds, float64
    values: np.ndarray  # float64
    windows: tuple[tuple[int, int], ...]

    @property
    def probation(self) -> int:
        """Length of the probationary period of this file."""
        return probation_length(len(self.values))


@dataclass(frozen=True)
class CorpusScore:
    """The outcome of one detector on one profile at its optimised threshold."""

    profile: str
    threshold: float
    raw: float
    normalised: float
    windows_detected: int
    windows_total: int
    fp_rows: int


def probation_length(n_rows: int, percent: float = PROBATION_PERCENT) -> int:
    """NAB's probationary period: ``min(floor(percent * rows), percent * 5000)`` rows."""
    return int(min(math.floor(percent * n_rows), percent * 5000))


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    """NAB's scaled sigmoid ``2 / (1 + exp(5 y)) - 1``, set to -1 for ``y > 3``."""
    y = np.asarray(y, dtype=np.float64)
    out = 2.0 / (1.0 + np.exp(np.clip(5.0 * y, -700.0, 700.0))) - 1.0
    return np.where(y > 3.0, -1.0, out)


def row_weights(n_rows: int, windows: Sequence[tuple[int, int]], profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """Per-row weight a detection would earn, and the row's window number (-1 outside every window).

    Implements NAB's ``Sweeper.calcSweepScore``: the scaled sigmoid of the relative position in the
    window for rows inside one (scaled to ``A_TP`` at the left edge), and ``A_FP`` times the sigmoid
    of the distance past the previous window (or ``-A_FP`` before the first window) outside.
    """
    weights = np.full(n_rows, -profile.fp, dtype=np.float64)
    window_id = np.full(n_rows, -1, dtype=np.int64)
    max_tp = float(scaled_sigmoid(-1.0))
    idx = np.arange(n_rows, dtype=np.float64)
    ordered = sorted(windows)
    for k, (left, right) in enumerate(ordered):
        width = float(right - left + 1)
        inside = slice(left, right + 1)
        weights[inside] = scaled_sigmoid(-(right - idx[inside] + 1.0) / width) * profile.tp / max_tp
        window_id[inside] = k
        stop = ordered[k + 1][0] if k + 1 < len(ordered) else n_rows
        after = slice(right + 1, stop)
        denominator = max(width - 1.0, 1.0)
        weights[after] = scaled_sigmoid(np.abs(right - idx[after]) / denominator) * profile.fp
    return weights, window_id


def optimise_threshold(series: Sequence[LabelledSeries], scores: Sequence[np.ndarray], profile: Profile) -> CorpusScore:
    """Find the corpus-wide threshold that maximises the total NAB score (NAB's optimiser).

    Rows of the probationary period are dropped first. Rows are sorted by score, highest first; the
    total at a threshold equal to a score value counts every row whose score is at least that value.
    """
    all_scores, all_weights, all_ids = [], [], []
    offset = 0
    for s, sc in zip(series, scores, strict=True):
        if len(sc) != len(s.values):
            raise ValueError(f"{s.name}: {len(sc)} scores for {len(s.values)} rows")
        weights, ids = row_weights(len(s.values), s.windows, profile)
        keep = slice(s.probation, None)
        ids = ids[keep]
        all_scores.append(as_nab_scores(sc)[keep])
        all_weights.append(weights[keep])
        all_ids.append(np.where(ids >= 0, ids + offset, -1))
        offset += len(s.windows)
    score = np.concatenate(all_scores)
    weight = np.concatenate(all_weights)
    wid = np.concatenate(all_ids)

    windows_scorable = np.unique(wid[wid >= 0])
    base = -profile.fn * len(windows_scorable)
    order = np.argsort(-score, kind="stable")
    s_sorted, w_sorted, id_sorted = score[order], weight[order], wid[order]

    contribution = np.where(id_sorted < 0, w_sorted, 0.0)
    in_window = np.nonzero(id_sorted >= 0)[0]
    by_window = in_window[np.argsort(id_sorted[in_window], kind="stable")]
    bounds = np.searchsorted(id_sorted[by_window], windows_scorable, side="left")
    bounds = np.append(bounds, len(by_window))
    for a, b in itertools.pairwise(bounds.tolist()):
        pos = by_window[a:b]  # positions of this window's rows, in decreasing-score order
        best = np.maximum.accumulate(np.maximum(w_sorted[pos], -profile.fn))
        previous = np.concatenate(([-profile.fn], best[:-1]))
        contribution[pos] += best - previous

    totals = base + np.cumsum(contribution)
    group_end = np.nonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))[0]
    candidates = np.concatenate(([base], totals[group_end]))
    thresholds = np.concatenate(([1.1], s_sorted[group_end]))
    k = int(np.argmax(candidates))  # first maximum = highest threshold among ties
    raw = float(candidates[k])
    threshold = float(thresholds[k])

    detected = score >= threshold if k > 0 else np.zeros(len(score), dtype=bool)
    windows_detected = len(np.unique(wid[detected & (wid >= 0)]))
    fp_rows = int(np.count_nonzero(detected & (wid < 0)))
    n_windows = offset
    return CorpusScore(
        profile=profile.name,
        threshold=threshold,
        raw=raw,
        normalised=normalise(raw, n_windows, profile),
        windows_detected=windows_detected,
        windows_total=n_windows,
        fp_rows=fp_rows,
    )


def as_nab_scores(scores: np.ndarray | Sequence[float]) -> np.ndarray:
    """Scores as NAB sees them: rounded to 12 decimals, as in NAB's result files.

    NAB writes each detector's scores to CSV and reads them back; its published result files carry 12
    significant digits, so e.g. ``1 - 4e-13`` becomes a tie at 1.0. Rounding the same way here makes
    the windowed Gaussian baseline land exactly on NAB's published figures.
    """
    return np.round(np.asarray(scores, dtype=np.float64), 12)


def normalise(raw: float, n_windows: int, profile: Profile) -> float:
    """NAB's normalisation: the null detector scores 0, a perfect detector 100."""
    null = -profile.fn * n_windows
    perfect = profile.tp * n_windows
    return 100.0 * (raw - null) / (perfect - null)


# ----------------------------------------------------------------------------------------- corpus I/O


def _read_series_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        t_col, v_col = header.index("timestamp"), header.index("value")
        rows = list(reader)
    stamps = np.array([r[t_col] for r in rows], dtype="datetime64[s]")
    values = np.array([float(r[v_col]) for r in rows], dtype=np.float64)
    return stamps, values


def _epoch(stamps: np.ndarray) -> np.ndarray:
    return stamps.astype("datetime64[s]").astype(np.int64).astype(np.float64)


def load_windows(data_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """The windows file: ``{"<category>/<file>.csv": [[start, end], ...]}``."""
    with (data_dir / "labels" / "combined_windows.json").open() as f:
        raw: dict[str, list[list[str]]] = json.load(f)
    return {name: [(w[0], w[1]) for w in ws] for name, ws in raw.items()}


def load_corpus(data_dir: Path) -> list[LabelledSeries]:
    """Every file named in the windows file, with window timestamps mapped to row indices."""
    windows = load_windows(data_dir)
    corpus = []
    for name in sorted(windows):
        stamps, values = _read_series_csv(data_dir / "data" / name)
        index = []
        for start, end in windows[name]:
            lo = np.array([start, end], dtype="datetime64[us]").astype("datetime64[s]")
            i, j = np.searchsorted(stamps, lo)
            if i >= len(stamps) or j >= len(stamps) or stamps[i] != lo[0] or stamps[j] != lo[1]:
                raise ValueError(f"{name}: window {start}..{end} does not match rows of the file")
            index.append((int(i), int(j)))
        corpus.append(LabelledSeries(name, _epoch(stamps), values, tuple(index)))
    return corpus


def load_nab_results(results_dir: Path, detector: str, corpus: Sequence[LabelledSeries]) -> list[np.ndarray]:
    """Scores from NAB's own result files ``<dir>/<category>/<detector>_<file>.csv``."""
    out = []
    for s in corpus:
        category, file_name = s.name.split("/")
        path = results_dir / category / f"{detector}_{file_name}"
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            out.append(np.array([float(r["anomaly_score"]) for r in reader], dtype=np.float64))
    return out


# ------------------------------------------------------------------------------------------- detectors


def run_null(series: LabelledSeries) -> np.ndarray:
    """The null detector: a constant score, i.e. no detection at the optimised threshold."""
    return np.zeros(len(series.values))


def run_windowed_gaussian(series: LabelledSeries, window: int = 6400, step: int = 100) -> np.ndarray:
    """NAB's windowed Gaussian baseline (same window, step and tail probability as NAB's)."""
    values = series.values
    out = np.zeros(len(values))
    data: list[float] = []
    pending: list[float] = []
    mean, std = 0.0, 1.0
    for i, x in enumerate(values):
        if data:
            z = abs(x - mean) / std
            out[i] = 1.0 - 0.5 * math.erfc(z / math.sqrt(2.0))
        if len(data) < window:
            data.append(float(x))
            refresh = True
        else:
            pending.append(float(x))
            refresh = len(pending) == step
            if refresh:
                data = data[step:] + pending
                pending = []
        if refresh:
            mean = float(np.mean(data))
            std = float(np.std(data)) or 0.000001
    return out


def run_safewatch(series: LabelledSeries) -> np.ndarray:
    """Our detector, with the NAB probationary period as its learning period."""
    detector = MetricDetector(AnomalyConfig(learning_period=series.probation))
    out = np.empty(len(series.values))
    for i, (x, t) in enumerate(zip(series.values.tolist(), series.timestamps.tolist(), strict=True)):
        out[i] = detector.update(x, t)
    return out


DETECTORS: dict[str, Callable[[LabelledSeries], np.ndarray]] = {
    "safewatch": run_safewatch,
    "null": run_null,
    "windowed_gaussian": run_windowed_gaussian,
}


def _run_one(job: tuple[str, LabelledSeries]) -> tuple[str, str, np.ndarray, float]:
    name, series = job
    start = time.perf_counter()
    scores = DETECTORS[name](series)
    return name, series.name, scores, time.perf_counter() - start


def run_detectors(
    names: Sequence[str], corpus: Sequence[LabelledSeries], jobs: int
) -> tuple[dict[str, list[np.ndarray]], dict[str, float]]:
    """Run each named detector over every file (in ``jobs`` processes); scores and CPU seconds each."""
    tasks = [(n, s) for n in names for s in sorted(corpus, key=lambda s: -len(s.values))]
    by_key: dict[tuple[str, str], np.ndarray] = {}
    cpu: dict[str, float] = dict.fromkeys(names, 0.0)
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            results = pool.imap_unordered(_run_one, tasks)
            for name, file_name, scores, seconds in results:
                by_key[(name, file_name)] = scores
                cpu[name] += seconds
    else:
        for task in tasks:
            name, file_name, scores, seconds = _run_one(task)
            by_key[(name, file_name)] = scores
            cpu[name] += seconds
    for (name, _), scores in by_key.items():
        if not np.all((scores >= 0.0) & (scores <= 1.0)):
            raise ValueError(f"detector {name} produced a score outside [0, 1]")
    return {n: [by_key[(n, s.name)] for s in corpus] for n in names}, cpu


# ------------------------------------------------------------------------------------------------ main


def default_data_dir() -> Path:
    """``--data`` default: ``$SAFEWATCH_NAB_DIR`` or ``shared/datasets/nab`` beside the repository."""
    env = os.environ.get("SAFEWATCH_NAB_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared/datasets/nab"


def per_file_table(
    corpus: Sequence[LabelledSeries], scores: Sequence[np.ndarray], threshold: float, profile: Profile
) -> list[str]:
    """One line per file: windows detected and FP rows at the given threshold, with the file's score."""
    lines = []
    for s, sc in zip(corpus, scores, strict=True):
        weights, ids = row_weights(len(s.values), s.windows, profile)
        keep = np.arange(len(sc)) >= s.probation
        hit = keep & (as_nab_scores(sc) >= threshold)
        total = 0.0
        detected = 0
        for k in range(len(s.windows)):
            rows = hit & (ids == k)
            if np.any(rows):
                detected += 1
                total += max(float(np.max(weights[rows])), -profile.fn)
            elif np.any(keep & (ids == k)):
                total -= profile.fn
        fp = hit & (ids < 0)
        total += float(np.sum(weights[fp]))
        lines.append(
            f"  {s.name:60s} windows {detected}/{len(s.windows)}  fp rows {int(fp.sum()):4d}  score {total:+7.3f}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints the normalised NAB scores of each detector."""
    parser = argparse.ArgumentParser(prog="python -m bench.nab.score", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="NAB data dir (data/ and labels/)")
    parser.add_argument("--detectors", default=",".join(DEFAULT_DETECTORS), help="comma-separated names")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: CPUs)")
    parser.add_argument("--per-file", action="store_true", help="print a per-file table (standard)")
    parser.add_argument("--nab-results", type=Path, default=None, help="score NAB result CSVs instead")
    parser.add_argument("--detector-name", default="numenta", help="detector name of --nab-results")
    args = parser.parse_args(argv)

    data_dir = args.data or default_data_dir()
    if not (data_dir / "labels" / "combined_windows.json").is_file():
        parser.error(f"no NAB corpus at {data_dir} (no labels/combined_windows.json); use --data or SAFEWATCH_NAB_DIR")
    started = time.perf_counter()
    corpus = load_corpus(data_dir)
    rows = sum(len(s.values) for s in corpus)
    n_windows = sum(len(s.windows) for s in corpus)
    print(f"NAB corpus: {data_dir} — {len(corpus)} files, {rows} rows, {n_windows} windows")
    print(
        f"machine: {platform.platform()}; {platform.processor() or platform.machine()}; "
        f"{os.cpu_count()} CPUs; python {platform.python_version()}; numpy {np.__version__}"
    )

    if args.nab_results is not None:
        all_scores = {args.detector_name: load_nab_results(args.nab_results, args.detector_name, corpus)}
        cpu: dict[str, float] = {args.detector_name: 0.0}
    else:
        names = [n.strip() for n in args.detectors.split(",") if n.strip()]
        unknown = [n for n in names if n not in DETECTORS]
        if unknown:
            parser.error(f"unknown detector(s) {unknown}; choose from {sorted(DETECTORS)}")
        all_scores, cpu = run_detectors(names, corpus, max(1, args.jobs))

    print(f"{'detector':20s} {'standard':>9s} {'low_FP':>9s} {'low_FN':>9s}   detail (standard profile)")
    for name, scores in all_scores.items():
        results = [optimise_threshold(corpus, scores, p) for p in PROFILES]
        std = results[0]
        print(
            f"{name:20s} {results[0].normalised:9.2f} {results[1].normalised:9.2f} {results[2].normalised:9.2f}"
            f"   threshold {std.threshold:.6g}, raw {std.raw:+.2f}, windows {std.windows_detected}/"
            f"{std.windows_total}, fp rows {std.fp_rows}, detector CPU {cpu[name]:.1f} s "
            f"({1e6 * cpu[name] / rows:.1f} µs/row)"
        )
        if args.per_file:
            print("\n".join(per_file_table(corpus, scores, std.threshold, PROFILES[0])))
    print(f"wall time: {time.perf_counter() - started:.1f} s (jobs={args.jobs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
