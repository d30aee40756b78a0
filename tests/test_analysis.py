"""core.analysis.stats against hand computations, brute-force enumeration and scipy."""

import itertools
from math import comb

import numpy as np
import pytest
from scipy import stats as scipy_stats

from core.analysis import stats


def brute_force_p(a, b):
    """Two-sided permutation p of the rank sum by listing every relabelling of the pooled values."""
    pooled = np.concatenate([a, b])
    ranks = scipy_stats.rankdata(pooled)
    n, expected = len(a), len(a) * (len(pooled) + 1) / 2
    observed = abs(ranks[:n].sum() - expected)
    sums = [ranks[list(idx)].sum() for idx in itertools.combinations(range(len(pooled)), n)]
    return np.mean([abs(s - expected) >= observed - 1e-9 for s in sums])


def test_auc_uneven_spacing_by_hand():
    # trapezoids: (1-0)*(0+2)/2 = 1 and (3-1)*(2+2)/2 = 4; area 5 over a span of 3
    assert stats.auc([0, 1, 3], [0, 2, 2]) == pytest.approx(5 / 3)
    assert stats.auc([3, 0, 1], [2, 0, 2]) == pytest.approx(5 / 3)  # order does not matter
    assert stats.auc([0, 10, 30, 100], [7.0] * 4) == pytest.approx(7.0)
    assert stats.auc([5000], [321.0]) == 321.0


def test_auc_until_horizon_by_hand():
    # curve (0,0) (2,4) (4,4): over [0, 3] the area is 2*4/2 + 1*4 = 8, mean 8/3
    assert stats.auc_until([0, 2, 4], [0, 4, 4], 3.0) == pytest.approx(8 / 3)
    # a first point after 0 is held flat before it: (1, 2) (3, 6) over [0, 3]: 1*2 + 2*(2+6)/2 = 10, mean 10/3
    assert stats.auc_until([1, 3], [2, 6], 3.0) == pytest.approx(10 / 3)
    assert np.isnan(stats.auc_until([0, 1], [1, 1], float("nan")))


def test_mann_whitney_u_by_hand_and_exact_scipy_without_ties():
    a, b = [1.0, 4.0, 6.0], [2.0, 3.0, 5.0]
    result = stats.mann_whitney(a, b)
    assert result.u == 5.0 and result.method == "exact"  # pairs with a > b: 4>2, 4>3, 6>2, 6>3, 6>5
    assert result.p == pytest.approx(scipy_stats.mannwhitneyu(a, b, method="exact").pvalue)
    rng = np.random.default_rng(1)
    x, y = rng.normal(0, 1, 9), rng.normal(0.8, 1, 7)
    assert stats.mann_whitney(x, y).p == pytest.approx(scipy_stats.mannwhitneyu(x, y, method="exact").pvalue)
    assert stats.mann_whitney([4, 5, 6], [1, 2, 3]).p == pytest.approx(0.1)  # 2 / C(6, 3)


@pytest.mark.parametrize("a, b", [
    ([1, 2, 2, 3], [2, 3, 3, 4, 5]),
    ([10, 10, 10], [10, 10, 20]),
    ([0, 0, 1, 1, 1], [1, 1, 2]),
    ([5, 5, 5, 7, 7], [5, 7, 7, 7, 9, 9]),
])
def test_permutation_p_with_ties_equals_brute_force(a, b):
    a, b = np.array(a, float), np.array(b, float)
    result = stats.mann_whitney(a, b)
    assert result.method == "exact"
    assert result.p == pytest.approx(brute_force_p(a, b), abs=1e-12)
    assert stats.mann_whitney(b, a).p == pytest.approx(result.p)  # symmetric in the two samples


def test_all_tied_is_p_one():
    assert stats.mann_whitney([1.0, 1.0], [1.0, 1.0]).p == 1.0


def test_monte_carlo_branch_agrees_with_exact(monkeypatch):
    a, b = [1, 2, 2, 3, 6, 7], [2, 3, 3, 4, 5, 8, 9]
    exact = stats.mann_whitney(a, b)
    monkeypatch.setattr(stats, "EXACT_LIMIT", 1)
    mc = stats.mann_whitney(a, b, mc_reps=40_000)
    assert mc.method.startswith("monte carlo") and "seed 0" in mc.method
    assert mc.p == pytest.approx(exact.p, abs=0.01)  # MC standard error here is about 0.0025
    assert mc == stats.mann_whitney(a, b, mc_reps=40_000)  # fixed seed: reproducible


def test_holm_hand_worked():
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm([0.5, 0.6]), [1.0, 1.0])
    np.testing.assert_allclose(stats.holm([0.2, 0.9]), [0.4, 0.9])
    assert stats.holm([]).size == 0


def test_smallest_attainable_p_and_seed_counts():
    assert stats.no_tie_p(5, 5) == pytest.approx(2 / 252)
    assert stats.no_tie_p(5, 5, u_extreme=1) == pytest.approx(4 / 252)  # U = 0 and U = 1, one split each
    assert stats.no_tie_p(3, 4) == pytest.approx(2 / comb(7, 3))
    # issue #13's case: 42 tests at 5 seeds reach at best 42 * 2/252 = 0.33
    assert 42 * stats.no_tie_p(5, 5) == pytest.approx(1 / 3)
    # 6 tests: 5 seeds reach 6 * 2/252 = 0.048 < 0.05; with a pair to spare 6 * 4/252 = 0.095, 6 seeds 6 * 4/924 ok
    assert stats.seeds_needed(6) == 5 and stats.seeds_needed(6, u_extreme=1) == 6
    assert stats.seeds_needed(1) == 4  # 2/70 = 0.029; 3 seeds give 2/20 = 0.1


def test_attainable_holm_is_holm_of_floors_and_bounds_any_outcome():
    sizes = [(10, 10), (2, 10), (5, 5)]
    floors = [2 / comb(20, 10), 2 / comb(12, 2), 2 / comb(10, 5)]
    np.testing.assert_allclose(stats.attainable_holm(sizes), stats.holm(floors))
    rng = np.random.default_rng(0)
    for _ in range(50):  # no family of real outcomes beats it
        p = [stats.mann_whitney(rng.normal(size=n), rng.normal(2.0, 1.0, m)).p for n, m in sizes]
        assert np.all(stats.holm(p) >= stats.attainable_holm(sizes) - 1e-12)
    # a tie pattern can push an exact p below the untied floor; the observed p then lowers the floor with it
    tied = stats.mann_whitney([2.0], [1.0, 1.0, 1.0])
    assert tied.p == pytest.approx(0.25) and tied.p < stats.no_tie_p(1, 3)
    assert stats.attainable_holm([(1, 3)], observed=[tied.p])[0] <= tied.p


def test_critical_u_matches_exact_p():
    assert stats.critical_u(3, 3, 0.05) is None  # 2/20 = 0.1 > 0.05
    assert stats.critical_u(5, 5, 0.05 / 6) == 25  # only complete separation (2/252 = 0.0079)
    k = stats.critical_u(10, 10, 0.05)
    # U = k is significant, U = k - 1 is not
    assert 2 * np.sum(stats._no_tie_u_counts(10, 10)[: 100 - k + 1]) / comb(20, 10) <= 0.05
    assert 2 * np.sum(stats._no_tie_u_counts(10, 10)[: 100 - k + 2]) / comb(20, 10) > 0.05


def test_min_detectable_effect_scales_with_spread_and_matches_theory():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 20), rng.normal(0, 1, 20)
    mde = stats.min_detectable_effect(a, b, 0.05)
    assert stats.min_detectable_effect(10 * a + 3, 10 * b - 7, 0.05) == pytest.approx(10 * mde)  # location-free
    spread = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    normal_theory = (1.96 + 0.84) * spread * np.sqrt(2 / 20)  # t-test at 80% power; rank test ~5% larger
    assert 0.85 * normal_theory < mde < 1.3 * normal_theory
    assert stats.min_detectable_effect(a[:5], b[:5], 0.05 / 6) > mde  # fewer seeds, stricter alpha: larger
    assert stats.min_detectable_effect(a[:3], b[:3], 0.05) == float("inf")  # 3 vs 3 cannot reach 0.05


def test_iqm_known_arrays():
    assert stats.iqm(np.arange(1, 9)) == pytest.approx(4.5)  # keeps 3, 4, 5, 6
    assert stats.iqm([0, 1, 2, 3, 4, 5, 6, 100]) == pytest.approx(3.5)  # the outlier is trimmed
    assert stats.iqm([[1, 2], [3, 4]]) == pytest.approx(2.5)  # pooled


def test_probability_of_improvement_hand_cases():
    assert stats.probability_of_improvement([5, 6, 7], [1, 2]) == 1.0
    assert stats.probability_of_improvement([3, 3], [3, 3]) == 0.5
    assert stats.probability_of_improvement([1, 2], [2]) == 0.25  # one tie (1/2) out of two pairs
    x, y = [1.0, 4.0, 6.0], [2.0, 3.0, 5.0]
    assert stats.probability_of_improvement(x, y) == pytest.approx(stats.mann_whitney(x, y).u / 9)
    by_x = {"a": np.array([5.0, 6.0]), "b": np.array([1.0, 3.0]), "only_x": np.array([0.0])}
    by_y = {"a": np.array([1.0]), "b": np.array([2.0, 2.0])}
    assert stats.probability_of_improvement_across_tasks(by_x, by_y) == pytest.approx((1.0 + 0.5) / 2)
    point, lo, hi = stats.probability_of_improvement_ci(by_x, by_y, reps=500)
    assert point == pytest.approx(0.75) and 0.0 <= lo <= point <= hi <= 1.0


def test_stratified_bootstrap_contains_point_shrinks_and_resamples_within_tasks():
    rng = np.random.default_rng(0)
    widths = []
    for n in (5, 100):
        by_task = {"t1": rng.normal(300, 50, n), "t2": rng.normal(700, 50, n)}
        point, lo, hi = stats.stratified_bootstrap_ci(by_task, stats.iqm, reps=1000)
        assert lo <= point <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2
    one_run_each = {"t1": np.array([100.0]), "t2": np.array([900.0]), "t3": np.array([500.0])}
    assert stats.stratified_bootstrap_ci(one_run_each, np.mean, reps=200) == pytest.approx((500.0,) * 3)


def test_bootstrap_mean_band_shapes():
    curves = np.random.default_rng(0).normal(size=(5, 7)).cumsum(axis=1)
    mean, lo, hi = stats.bootstrap_mean_band(curves, reps=500)
    assert mean.shape == lo.shape == hi.shape == (7,)
    np.testing.assert_allclose(mean, curves.mean(axis=0))
    assert np.all(lo <= mean + 1e-12) and np.all(mean <= hi + 1e-12)
