"""core.analysis against hand computations and scipy."""

import numpy as np
import pytest
from scipy import stats

from core import analysis


def test_auc_uneven_spacing_by_hand():
    # trapezoids: (1-0)*(0+2)/2 = 1 and (3-1)*(2+2)/2 = 4; area 5 over a span of 3
    assert analysis.auc([0, 1, 3], [0, 2, 2]) == pytest.approx(5 / 3)
    # order of the evaluations does not matter
    assert analysis.auc([3, 0, 1], [2, 0, 2]) == pytest.approx(5 / 3)


def test_auc_constant_curve_and_single_point():
    assert analysis.auc([0, 10, 30, 100], [7.0] * 4) == pytest.approx(7.0)
    assert analysis.auc([5000], [321.0]) == 321.0
    # scaling the x axis (agent steps vs frames) leaves it unchanged
    assert analysis.auc([0, 2, 6], [0, 2, 2]) == pytest.approx(analysis.auc([0, 1, 3], [0, 2, 2]))


def test_mann_whitney_hand_u_and_scipy():
    a, b = [1.0, 4.0, 6.0], [2.0, 3.0, 5.0]
    u, p = analysis.mann_whitney(a, b)
    assert u == 5.0  # pairs with a > b: 4>2, 4>3, 6>2, 6>3, 6>5
    expected = stats.mannwhitneyu(a, b, alternative="two-sided")
    assert (u, p) == pytest.approx((expected.statistic, expected.pvalue))
    rng = np.random.default_rng(1)
    x, y = rng.normal(0, 1, 12), rng.normal(0.5, 1, 9)
    expected = stats.mannwhitneyu(x, y, alternative="two-sided")
    assert analysis.mann_whitney(x, y) == pytest.approx((expected.statistic, expected.pvalue))


def test_mann_whitney_all_tied_is_p_one():
    assert analysis.mann_whitney([1.0, 1.0], [1.0, 1.0])[1] == 1.0


def test_holm_hand_worked():
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.02, 0.03, 0.06, 0.06
    adjusted = analysis.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(analysis.holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(analysis.holm([0.2, 0.9]), [0.4, 0.9])
    assert analysis.holm([]).size == 0


def test_holm_never_below_raw():
    p = np.random.default_rng(0).uniform(size=20)
    adjusted = analysis.holm(p)
    assert np.all(adjusted >= p) and np.all(adjusted <= 1.0)


def test_iqm_known_arrays():
    assert analysis.iqm(np.arange(1, 9)) == pytest.approx(4.5)  # keeps 3, 4, 5, 6
    assert analysis.iqm([0, 1, 2, 3, 4, 5, 6, 100]) == pytest.approx(3.5)  # the outlier is trimmed
    assert analysis.iqm([[1, 2], [3, 4]]) == pytest.approx(2.5)  # pooled


def test_probability_of_improvement_hand_cases():
    assert analysis.probability_of_improvement([5, 6, 7], [1, 2]) == 1.0
    assert analysis.probability_of_improvement([1, 2], [5, 6, 7]) == 0.0
    assert analysis.probability_of_improvement([3, 3], [3, 3]) == 0.5
    assert analysis.probability_of_improvement([1, 3], [2, 2]) == 0.5  # 3>2 twice out of four pairs
    assert analysis.probability_of_improvement([1, 2], [2]) == 0.25  # one tie (1/2) out of two pairs
    x, y = [1.0, 4.0, 6.0], [2.0, 3.0, 5.0]
    assert analysis.probability_of_improvement(x, y) == pytest.approx(analysis.mann_whitney(x, y)[0] / 9)


def test_probability_of_improvement_across_tasks_is_task_average():
    x = {"a": np.array([5.0, 6.0]), "b": np.array([1.0, 3.0]), "only_x": np.array([0.0])}
    y = {"a": np.array([1.0]), "b": np.array([2.0, 2.0])}
    assert analysis.probability_of_improvement_across_tasks(x, y) == pytest.approx((1.0 + 0.5) / 2)
    point, lo, hi = analysis.probability_of_improvement_ci(x, y, reps=500, rng=np.random.default_rng(0))
    assert point == pytest.approx(0.75)
    assert 0.0 <= lo <= point <= hi <= 1.0


def test_stratified_bootstrap_contains_point_and_shrinks():
    rng = np.random.default_rng(0)
    widths = []
    for n in (5, 100):
        by_task = {"t1": rng.normal(300, 50, n), "t2": rng.normal(700, 50, n)}
        point, lo, hi = analysis.stratified_bootstrap_ci(by_task, analysis.iqm, reps=1000, rng=np.random.default_rng(1))
        assert lo <= point <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2


def test_stratified_bootstrap_resamples_within_tasks():
    # one run per task: every stratified resample is the data itself, so the interval collapses to the point
    by_task = {"t1": np.array([100.0]), "t2": np.array([900.0]), "t3": np.array([500.0])}
    point, lo, hi = analysis.stratified_bootstrap_ci(by_task, np.mean, reps=200)
    assert point == lo == hi == pytest.approx(500.0)


def test_bootstrap_mean_band_shapes():
    curves = np.random.default_rng(0).normal(size=(5, 7)).cumsum(axis=1)
    mean, lo, hi = analysis.bootstrap_mean_band(curves, reps=500, rng=np.random.default_rng(0))
    assert mean.shape == lo.shape == hi.shape == (7,)
    np.testing.assert_allclose(mean, curves.mean(axis=0))
    assert np.all(lo <= mean + 1e-12) and np.all(mean <= hi + 1e-12)
    single = curves[:1]
    mean, lo, hi = analysis.bootstrap_mean_band(single, reps=50)
    np.testing.assert_allclose(lo, single[0])
    np.testing.assert_allclose(hi, single[0])


def test_min_attainable_p():
    assert analysis.min_attainable_p(3, 3) == pytest.approx(0.1)
    assert stats.mannwhitneyu([4, 5, 6], [1, 2, 3], alternative="two-sided").pvalue == pytest.approx(0.1)


def test_iqm_along_axis_and_bootstrap_fast_path_agree_with_loop():
    rows = np.random.default_rng(2).normal(size=(4, 9))
    np.testing.assert_allclose(analysis.iqm(rows, axis=1), [analysis.iqm(r) for r in rows])
    by_task = {"t1": rows[0], "t2": rows[1, :5]}
    fast = analysis.stratified_bootstrap_ci(by_task, analysis.iqm, reps=300, rng=np.random.default_rng(3))
    loop = analysis.stratified_bootstrap_ci(by_task, lambda x: analysis.iqm(x), reps=300, rng=np.random.default_rng(3))
    assert fast == pytest.approx(loop)
