"""Unit tests of the streaming anomaly detectors (alerts.engine.anomaly): pure, in-memory data only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alerts.engine.anomaly import (
    COMBINED_KEY,
    CROSS_KEY,
    AnomalyConfig,
    EquipmentDetector,
    MetricDetector,
)

T0 = 1_700_000_000.0
STEP = 300.0
CONFIG = AnomalyConfig(learning_period=300)


def scores_of(values: np.ndarray, config: AnomalyConfig = CONFIG) -> np.ndarray:
    detector = MetricDetector(config)
    return np.array([detector.update(float(x), T0 + STEP * i) for i, x in enumerate(values)])


def noise(seed: int, n: int = 3000) -> np.ndarray:
    return np.random.default_rng(seed).uniform(9.0, 11.0, n)


def test_score_at_t_does_not_depend_on_later_points() -> None:
    base = noise(1)
    changed = base.copy()
    changed[1500:] = np.random.default_rng(99).normal(50.0, 20.0, len(base) - 1500)
    a, b = scores_of(base), scores_of(changed)
    np.testing.assert_array_equal(a[:1500], b[:1500])
    assert not np.array_equal(a[1500:], b[1500:])


def test_same_input_gives_same_scores() -> None:
    values = noise(2)
    np.testing.assert_array_equal(scores_of(values), scores_of(values))


def test_scores_are_zero_while_learning_and_within_unit_interval() -> None:
    values = np.concatenate([noise(3), [1e6, -1e6, 10.0]])
    s = scores_of(values)
    assert np.all(s[: CONFIG.learning_period] == 0.0)
    assert np.all((s >= 0.0) & (s <= 1.0))


def test_stationary_noise_stays_low() -> None:
    s = scores_of(noise(0))[CONFIG.learning_period :]
    assert s.max() < 0.4
    gaussian = np.random.default_rng(5).normal(10.0, 1.0, 3000)
    g = scores_of(gaussian)[CONFIG.learning_period :]
    assert np.mean(g >= 0.5) < 0.005
    assert np.quantile(g, 0.99) < 0.3


def test_clear_spike_scores_high() -> None:
    values = noise(0)
    values[2000] += 8.0
    s = scores_of(values)
    assert s[2000] >= 0.9
    assert s[CONFIG.learning_period : 2000].max() < 0.4


def test_clear_level_shift_scores_high_and_alarms_once_per_rest_period() -> None:
    values = noise(4)
    values[2000:] += 3.0
    s = scores_of(values)
    assert s[2000:2010].max() >= 0.9
    first = 2000 + int(np.argmax(s[2000:] >= 0.9))
    rest = CONFIG.effective_rest_period
    assert np.all(s[first + 1 : first + 1 + rest] == 0.0)


def test_daily_context_flags_a_value_at_an_unusual_time_of_day() -> None:
    n, day = 4000, 288  # 5-minute steps
    t = np.arange(n)
    values = np.where((t % day) < day // 2, 20.0, 80.0) + np.random.default_rng(1).normal(0.0, 1.0, n)
    start = 10 * day + day // 2 + 10  # well inside the high half of day 10
    values[start : start + 30] = 20.0 + np.random.default_rng(7).normal(0.0, 1.0, 30)
    config = AnomalyConfig(learning_period=750)
    s = scores_of(values, config)
    assert s[start : start + 40].max() >= config.rest_level  # an alarm at the default alarm level
    assert s[750 : start - 10].max() < config.rest_level


def test_non_finite_values_are_ignored() -> None:
    detector = MetricDetector(CONFIG)
    for i, x in enumerate(noise(8, 400)):
        detector.update(float(x), T0 + STEP * i)
    state = detector.to_state()
    assert detector.update(float("nan"), T0 + 1e6) == 0.0
    assert detector.update(float("inf"), T0 + 1e6) == 0.0
    assert detector.to_state() == state


def test_state_size_is_bounded_after_100k_points() -> None:
    detector = MetricDetector(AnomalyConfig())
    bound = detector.config.memory_bound_bytes()
    assert detector.nbytes() <= bound
    rng = np.random.default_rng(9)
    values = np.cumsum(rng.normal(0.0, 1.0, 100_000))  # a random walk: ever new values and contexts
    sizes = []
    for i, x in enumerate(values.tolist()):
        detector.update(x, T0 + 60.0 * i)
        if i in (1_000, 100_000 - 1):
            state = detector.to_state()
            shape = {k: len(v) for k, v in state.items() if isinstance(v, list | str)}
            sizes.append((detector.nbytes(), shape, len(json.dumps(state)) < 40_000))
    assert sizes[0] == sizes[1]
    assert sizes[1][2]
    assert detector.nbytes() <= detector.config.memory_bound_bytes(learning=False)


def test_state_round_trip_continues_identically() -> None:
    values = noise(10, 1200)
    values[900] += 5.0
    original = MetricDetector(CONFIG)
    for i, x in enumerate(values[:600].tolist()):
        original.update(x, T0 + STEP * i)
    restored = MetricDetector.from_state(json.loads(json.dumps(original.to_state())))
    for i, x in enumerate(values[600:].tolist(), start=600):
        assert restored.update(x, T0 + STEP * i) == original.update(x, T0 + STEP * i)
    assert restored.to_state() == original.to_state()


def test_state_round_trip_during_learning() -> None:
    values = noise(11, 800)
    original = MetricDetector(CONFIG)
    for i, x in enumerate(values[:100].tolist()):
        original.update(x, T0 + STEP * i)
    restored = MetricDetector.from_state(original.to_state())
    for i, x in enumerate(values[100:].tolist(), start=100):
        assert restored.update(x, T0 + STEP * i) == original.update(x, T0 + STEP * i)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="learning_period"):
        AnomalyConfig(learning_period=1)
    with pytest.raises(ValueError, match="table_slots"):
        AnomalyConfig(table_slots=100)
    assert AnomalyConfig(learning_period=1000).effective_rest_period == 150
    assert AnomalyConfig(rest_period=7).effective_rest_period == 7


def _correlated(seed: int, n: int, broken_from: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, n)
    b = a + rng.normal(0.0, 0.1, n)
    if broken_from is not None:
        b[broken_from:] = -a[broken_from:] + rng.normal(0.0, 0.1, n - broken_from)
    return a, b


def test_equipment_detector_reports_metrics_cross_and_combined() -> None:
    a, b = _correlated(1, 2200, broken_from=2000)
    equipment = EquipmentDetector(["current", "load"], CONFIG)
    out = [
        equipment.update({"current": float(x), "load": float(y)}, T0 + 60.0 * i)
        for i, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True))
    ]
    assert set(out[-1]) == {"current", "load", CROSS_KEY, COMBINED_KEY}
    assert all(o[COMBINED_KEY] == max(o["current"], o["load"], o[CROSS_KEY]) for o in out)
    cross = np.array([o[CROSS_KEY] for o in out])
    assert cross[2000:2100].max() >= 0.5  # the correlation broke, each metric alone stays in range
    assert cross[2000:2100].max() > cross[CONFIG.learning_period : 2000].max()


def test_equipment_detector_partial_readings_and_unknown_metric() -> None:
    equipment = EquipmentDetector(["current", "load"], CONFIG)
    out = equipment.update({"current": 1.0}, T0)
    assert set(out) == {"current", CROSS_KEY, COMBINED_KEY}
    assert out[CROSS_KEY] == 0.0
    with pytest.raises(ValueError, match="unknown metric"):
        equipment.update({"speed": 1.0}, T0 + 60.0)


def test_equipment_state_round_trip() -> None:
    a, b = _correlated(2, 900, broken_from=700)
    first = EquipmentDetector(["current", "load"], CONFIG)
    for i in range(500):
        first.update({"current": float(a[i]), "load": float(b[i])}, T0 + 60.0 * i)
    second = EquipmentDetector.from_state(json.loads(json.dumps(first.to_state())))
    for i in range(500, 900):
        readings = {"current": float(a[i]), "load": float(b[i])}
        assert second.update(readings, T0 + 60.0 * i) == first.update(readings, T0 + 60.0 * i)
    assert second.nbytes() == first.nbytes()
