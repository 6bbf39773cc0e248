"""Unit tests of our NAB scorer (bench.nab.score) on tiny in-memory corpora."""

from __future__ import annotations

import numpy as np
import pytest

from bench.nab.score import (
    PROFILES,
    LabelledSeries,
    Profile,
    optimise_threshold,
    probation_length,
    row_weights,
    run_windowed_gaussian,
    scaled_sigmoid,
)

STANDARD, LOW_FP, LOW_FN = PROFILES


def series(name: str, n: int, windows: tuple[tuple[int, int], ...]) -> LabelledSeries:
    return LabelledSeries(
        name=name,
        timestamps=1_400_000_000.0 + 300.0 * np.arange(n),
        values=np.zeros(n),
        windows=windows,
    )


CORPUS = (
    series("a/one.csv", 1000, ((400, 449),)),
    series("a/two.csv", 2000, ((600, 699), (1500, 1599))),
    series("b/none.csv", 800, ()),
)


def perfect(corpus: tuple[LabelledSeries, ...]) -> list[np.ndarray]:
    out = []
    for s in corpus:
        x = np.zeros(len(s.values))
        for left, _ in s.windows:
            x[left] = 1.0
        out.append(x)
    return out


def test_profiles_are_nab_cost_matrices() -> None:
    assert [(p.name, p.tp, p.fp, p.fn) for p in PROFILES] == [
        ("standard", 1.0, 0.11, 1.0),
        ("reward_low_FP_rate", 1.0, 0.22, 1.0),
        ("reward_low_FN_rate", 1.0, 0.11, 2.0),
    ]


def test_probation_length_follows_nab() -> None:
    assert probation_length(1000) == 150
    assert probation_length(4032) == 604
    assert probation_length(22695) == 750


def test_scaled_sigmoid_values() -> None:
    assert float(scaled_sigmoid(-1.0)) == pytest.approx(0.98661, abs=1e-5)
    assert float(scaled_sigmoid(0.0)) == pytest.approx(0.0)
    assert float(scaled_sigmoid(1.0)) == pytest.approx(-0.98661, abs=1e-5)
    assert float(scaled_sigmoid(3.5)) == -1.0


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_perfect_detector_scores_100(profile: Profile) -> None:
    result = optimise_threshold(CORPUS, perfect(CORPUS), profile)
    assert result.normalised == pytest.approx(100.0)
    assert result.windows_detected == result.windows_total == 3
    assert result.fp_rows == 0


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_null_detector_scores_0(profile: Profile) -> None:
    for constant in (0.0, 0.5, 1.0):
        scores = [np.full(len(s.values), constant) for s in CORPUS]
        result = optimise_threshold(CORPUS, scores, profile)
        assert result.normalised == pytest.approx(0.0)
        assert result.windows_detected == 0


def test_detection_at_window_start_beats_detection_at_its_end() -> None:
    s = (series("a/one.csv", 1000, ((400, 449),)),)
    early, late = np.zeros(1000), np.zeros(1000)
    early[400] = 1.0
    late[449] = 1.0
    r_early = optimise_threshold(s, [early], STANDARD)
    r_late = optimise_threshold(s, [late], STANDARD)
    assert r_early.raw == pytest.approx(1.0)
    assert 0.0 < r_late.raw < 0.1  # the right edge is worth almost nothing...
    assert r_late.normalised > 50.0  # ...but still beats missing the window
    assert r_early.normalised > r_late.normalised


def test_only_the_first_detection_in_a_window_counts() -> None:
    s = (series("a/one.csv", 1000, ((400, 449),)),)
    once, many = np.zeros(1000), np.zeros(1000)
    once[410] = 1.0
    many[410:450] = 1.0
    assert optimise_threshold(s, [many], STANDARD).raw == pytest.approx(optimise_threshold(s, [once], STANDARD).raw)


def test_false_positive_penalty() -> None:
    scores = perfect(CORPUS)
    scores[0][200] = 1.0  # before the file's first window: full A_FP
    result = optimise_threshold(CORPUS, scores, STANDARD)
    assert result.raw == pytest.approx(3.0 - 0.11)
    assert result.normalised == pytest.approx(100.0 * (3.0 - 0.11 + 3.0) / 6.0)
    assert optimise_threshold(CORPUS, scores, LOW_FP).raw == pytest.approx(3.0 - 0.22)


def test_false_positive_just_after_a_window_costs_less() -> None:
    weights, ids = row_weights(1000, ((400, 449),), STANDARD)
    assert ids[399] == -1 and ids[400] == 0 and ids[449] == 0 and ids[450] == -1
    assert weights[399] == pytest.approx(-0.11)
    assert -0.11 < weights[460] < weights[450] <= 0.0
    assert weights[999] == pytest.approx(-0.11)  # more than 3 window widths after: full A_FP
    assert weights[400] == pytest.approx(1.0)


def test_detections_in_the_probationary_period_are_ignored() -> None:
    scores = perfect(CORPUS)
    scores[2][: probation_length(800)] = 1.0  # all inside b/none.csv's probation
    assert optimise_threshold(CORPUS, scores, STANDARD).normalised == pytest.approx(100.0)


def test_threshold_is_chosen_over_the_whole_corpus() -> None:
    # Window hits score 0.6; noise outside windows scores 0.7 on 30 rows. At 0.6 the three windows
    # are worth more than the 30 FPs cost (3 * 2 - 30 * 0.11 > 0), so the optimiser takes 0.6.
    scores = [x * 0.6 for x in perfect(CORPUS)]
    scores[2][300:330] = 0.7
    result = optimise_threshold(CORPUS, scores, STANDARD)
    assert result.threshold == pytest.approx(0.6)
    assert result.fp_rows == 30
    assert result.raw == pytest.approx(3.0 - 30 * 0.11)
    # With A_FP = 0.22 the same 30 FPs cost 6.6 > 6: detecting nothing is better.
    assert optimise_threshold(CORPUS, scores, LOW_FP).windows_detected == 0


def test_windowed_gaussian_flags_an_outlier() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0.0, 1.0, 500)
    values[400] = 25.0
    s = LabelledSeries("x/y.csv", 300.0 * np.arange(500), values, ((390, 420),))
    out = run_windowed_gaussian(s)
    assert out[0] == 0.0
    assert out[400] == pytest.approx(1.0)
    assert np.all((out >= 0.0) & (out <= 1.0))
