"""The shard-wide anomaly detectors (alerts.engine.anomaly_bank) score exactly as the reference detectors."""

from __future__ import annotations

import json
from collections.abc import Hashable
from dataclasses import replace
from typing import TypeVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.engine.anomaly import COMBINED_KEY, CROSS_KEY, AnomalyConfig, EquipmentDetector, MetricDetector
from alerts.engine.anomaly_bank import DetectorBank, FleetDetector

T0 = 1_700_000_000.0
SMALL = AnomalyConfig(learning_period=40, avg_window=7, table_slots=64, tod_offset_s=28_800.0)


def series(seed: int, n: int) -> np.ndarray:
    """Noise with a level shift, a spike far outside the learned range and a flat stretch."""
    rng = np.random.default_rng(seed)
    x = rng.normal(10.0, 1.0, n)
    x[n // 2:] += 4.0
    x[n // 3] = 1e4
    x[2 * n // 3: 2 * n // 3 + 20] = 12.0
    return x

K = TypeVar("K", bound=Hashable)  # whatever keys the caller gives its detectors


def run_both(config: AnomalyConfig, streams: dict[str, np.ndarray], step_s: float,
             metrics_of: dict[K, tuple[str, ...]]) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """The same readings through reference EquipmentDetectors and one FleetDetector, instant by instant."""
    reference = {key: EquipmentDetector(metrics, config) for key, metrics in metrics_of.items()}
    fleet = FleetDetector(config)
    for key, metrics in metrics_of.items():
        fleet.add(key, metrics)
    n = len(next(iter(streams.values())))
    expected, got = [], []
    for i in range(n):
        t = T0 + step_s * i
        requests = [(key, t, {m: float(streams[m][i]) for m in metrics}) for key, metrics in metrics_of.items()]
        expected += [reference[key].update(readings, ts) for key, ts, readings in requests]
        got += fleet.score(requests)
    if n > config.learning_period:  # every stream was scored by the bank, not by a reference detector
        assert fleet.bank.size == sum(len(m) for m in metrics_of.values())
    return expected, got


@pytest.mark.parametrize("slots", [64, 72], ids=["slots a power of two", "slots not a power of two"])
def test_fleet_scores_equal_the_reference_through_learning_spikes_and_rest(slots: int) -> None:
    streams = {f"m{k}": series(k, 400) for k in range(3)}
    metrics_of = {"boiler": ("m0", "m1", "m2"), "elevator": ("m1",), "vessel": ("m2", "m0")}
    expected, got = run_both(replace(SMALL, table_slots=slots), streams, 600.0, metrics_of)
    assert got == expected
    assert max(r[COMBINED_KEY] for r in got) == 1.0  # the spike scored, and the rest period followed it
    assert any(r[CROSS_KEY] > 0.0 for r in got)


def test_many_equipment_with_cross_terms_of_two_and_three_metrics_in_one_wave() -> None:
    streams = {f"m{k}": series(k, 200) for k in range(3)}
    metrics_of: dict[str, tuple[str, ...]] = {}
    for n in range(12):  # rotated metric orders: each equipment's vector differs
        names = ("m0", "m1", "m2")[n % 3:] + ("m0", "m1", "m2")[:n % 3]
        metrics_of[f"three-{n}"] = names
        metrics_of[f"two-{n}"] = names[:2]
    expected, got = run_both(SMALL, streams, 60.0, metrics_of)
    assert got == expected
    assert sum(r[CROSS_KEY] > 0.0 for r in got) > 24


def test_defaults_equal_the_reference_past_learning() -> None:
    config = AnomalyConfig()
    streams = {"speed": series(7, 1200), "load": series(8, 1200)}
    expected, got = run_both(config, streams, 1.0, {1: ("speed", "load"), 2: ("speed",)})
    assert got == expected
    assert any(r["speed"] > 0.0 for r in got[2 * config.learning_period:])


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=50, max_size=160),
       step=st.sampled_from([1.0, 37.0, 3600.0]))
def test_any_series_scores_as_the_reference(values: list[float], step: float) -> None:
    arr = np.array(values)
    expected, got = run_both(SMALL, {"a": arr, "b": arr[::-1].copy()}, step, {"x": ("a", "b"), "y": ("b",)})
    assert got == expected


def test_several_instants_of_one_equipment_in_one_call_keep_their_order() -> None:
    config = SMALL
    x = series(3, 200)
    reference = MetricDetector(config)
    want = [reference.update(float(v), T0 + i) for i, v in enumerate(x)]
    fleet = FleetDetector(config)
    fleet.add("e", ("m",))
    fleet.add("other", ("m",))
    got: list[float] = []
    for start in range(0, len(x), 25):  # 25 instants of "e" per call, interleaved with one of "other"
        requests = []
        for i in range(start, start + 25):
            requests.append(("e", T0 + i, {"m": float(x[i])}))
            if i % 5 == 0:
                requests.append(("other", T0 + i, {"m": 1.0}))
        got += [r["m"] for (key, _, _), r in zip(requests, fleet.score(requests), strict=True) if key == "e"]
    assert got == want


def test_non_finite_readings_score_zero_and_change_nothing() -> None:
    config = SMALL
    x = series(4, 120)
    fleet, reference = FleetDetector(config), EquipmentDetector(("m",), config)
    fleet.add("e", ("m",))
    for i, v in enumerate(x):
        for value in (float(v), float("nan"), float("inf")):
            assert fleet.score([("e", T0 + i, {"m": value})]) == [reference.update({"m": value}, T0 + i)]


def test_saved_state_is_the_reference_format_and_continues_exactly() -> None:
    config = SMALL
    x = series(5, 300)
    fleet = FleetDetector(config)
    fleet.add("e", ("a", "b"))
    for i in range(150):
        fleet.score([("e", T0 + i, {"a": float(x[i]), "b": float(-x[i])})])
    saved = json.loads(json.dumps(fleet.export("e").to_state()))
    reference = EquipmentDetector.from_state(saved)
    restored = FleetDetector(config)
    restored.adopt("e", EquipmentDetector.from_state(saved))
    for i in range(150, 300):
        readings = {"a": float(x[i]), "b": float(-x[i])}
        want = reference.update(readings, T0 + i)
        assert fleet.score([("e", T0 + i, readings)]) == [want]
        assert restored.score([("e", T0 + i, readings)]) == [want]


def test_unknown_metric_is_refused_and_rows_are_reused() -> None:
    fleet = FleetDetector(SMALL)
    fleet.add("e", ("a",))
    with pytest.raises(ValueError, match="unknown metric"):
        fleet.score([("e", T0, {"b": 1.0})])
    for i in range(SMALL.learning_period):
        fleet.score([("e", T0 + i, {"a": float(i % 7)})])
    assert fleet.bank.size == 1
    fleet.discard("e")
    fleet.add("f", ("a",))
    for i in range(SMALL.learning_period):
        fleet.score([("f", T0 + i, {"a": float(i % 5)})])
    assert fleet.bank.size == 1  # the freed row was taken again


def test_bank_refuses_a_learning_detector_and_grows() -> None:
    bank = DetectorBank(SMALL, capacity=2)
    with pytest.raises(ValueError, match="learning period"):
        bank.put(MetricDetector(SMALL))
    trained = MetricDetector(SMALL)
    for i in range(SMALL.learning_period):
        trained.update(float(i % 3), T0 + i)
    rows = [bank.put(trained) for _ in range(5)]
    assert rows == [0, 1, 2, 3, 4] and bank.capacity >= 5
    assert bank.get(4).to_state() == trained.to_state()


def test_a_learning_range_a_few_ulps_wide_and_values_far_beyond_it() -> None:
    """Readings that differ by the smallest float while learning, then far away: the grid falls back to
    a usable width instead of dividing by 0.0, and a value past 2**62 steps is in the last bin; the
    reference and the bank agree throughout (this once raised ZeroDivisionError and OverflowError)."""
    learning = [0.0, 5e-324] * (SMALL.learning_period // 2)
    later = [1e6, -1e6, 5e-324, 0.0, 1e6] * 20
    expected, got = run_both(SMALL, {"m": np.array(learning + later)}, 60.0, {"eq": ("m",)})
    assert got == expected
    tiny = [0.0, 1e-310] * (SMALL.learning_period // 2)  # a width that divides, into steps past 2**62
    expected, got = run_both(SMALL, {"m": np.array(tiny + later)}, 60.0, {"eq": ("m",)})
    assert got == expected
    assert max(r["m"] for r in got) == 1.0


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300).flatmap(lambda width: st.lists(
    st.lists(st.floats(-1e297, 1e297, allow_nan=False, allow_infinity=False), min_size=width, max_size=width),
    min_size=1, max_size=6)))
def test_rows_summed_at_once_give_each_row_sum_bit_for_bit(ring: list[list[float]]):
    """The surprise rows re-sum their rings all at once (`_SurpriseRows.score`); the reference sums one
    ring as a 1-D array. They agree only because numpy sums each row of a contiguous array pairwise, as
    it sums that row alone: held here for every width, so a numpy that changed it fails this test."""
    rows = np.array(ring)
    together = rows.sum(axis=1)
    for r, row in enumerate(ring):
        assert together[r] == float(np.sum(np.asarray(row, dtype=np.float64)))


def test_a_ring_of_eight_or_more_is_resummed_in_the_reference_order() -> None:
    """Rings of 8 values or more are summed pairwise by numpy, not left to right: with magnitudes far
    apart the two orders give different averages, so the bank must re-sum as the reference does."""
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 1.0, 400)
    x[::3] += 2.0**52  # ones and halves vanish or survive depending on the order of the sum
    x[1::3] -= 2.0**52
    config = replace(SMALL, avg_window=12)
    expected, got = run_both(config, {"m": x, "n": x[::-1].copy()}, 60.0, {"eq": ("m", "n")})
    assert got == expected
    assert any(r["m"] > 0.0 for r in got[config.learning_period:])
