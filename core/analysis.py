"""Statistics for comparing runs: learning-curve AUC, rank tests, Holm correction, IQM and stratified bootstraps.

Pure numpy/scipy, no plotting, no file I/O. The bootstrap definitions follow rliable (Agarwal et al., 2021):
runs are resampled within each task independently and the statistic is applied to the pooled resample;
confidence intervals are percentile intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from math import comb

import numpy as np
from scipy import stats

Statistic = Callable[[np.ndarray], float]


def auc(steps: np.ndarray, returns: np.ndarray) -> float:
    """Trapezoid area under the curve divided by the step span: a mean return, so a constant curve c gives c."""
    steps = np.asarray(steps, dtype=float)
    returns = np.asarray(returns, dtype=float)
    if steps.shape != returns.shape or steps.ndim != 1 or steps.size == 0:
        raise ValueError(f"auc needs two equal-length 1-D arrays, got shapes {steps.shape} and {returns.shape}")
    if steps.size == 1:
        return float(returns[0])
    order = np.argsort(steps, kind="stable")
    steps, returns = steps[order], returns[order]
    span = steps[-1] - steps[0]
    if span <= 0:  # every evaluation at the same step: no area to speak of, the mean is the honest summary
        return float(returns.mean())
    area = float(np.sum(np.diff(steps) * (returns[1:] + returns[:-1]) / 2.0))
    return area / float(span)


def mann_whitney(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test; returns (U of `a`, p). p is 1.0 where the test is undefined (all values tied)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("mann_whitney needs at least one value in each sample")
    result = stats.mannwhitneyu(a, b, alternative="two-sided")
    p = float(result.pvalue)
    return float(result.statistic), (1.0 if np.isnan(p) else p)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (same order as given), monotone and capped at 1."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted


def iqm(x: np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Interquartile mean: the mean of the middle 50% of the scores (scipy trim_mean, 0.25 cut); pooled if axis=None."""
    x = np.asarray(x, dtype=float)
    if axis is None:
        x = x.ravel()
        axis = 0
    if x.shape[axis] == 0:
        return float("nan")
    result = stats.trim_mean(x, 0.25, axis=axis)
    return float(result) if np.ndim(result) == 0 else result


def _percentile_ci(samples: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def _resample_within_tasks(
    scores_by_task: Mapping[str, np.ndarray], reps: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """For each task, `reps` resamples (with replacement) of its runs: task -> array (reps, n_runs_of_task)."""
    out = {}
    for task, scores in scores_by_task.items():
        scores = np.asarray(scores, dtype=float).ravel()
        if scores.size == 0:
            raise ValueError(f"task {task!r} has no runs to resample")
        out[task] = scores[rng.integers(0, scores.size, size=(reps, scores.size))]
    return out


def stratified_bootstrap_ci(
    scores_by_task: Mapping[str, np.ndarray],
    statistic: Statistic = iqm,
    reps: int = 2000,
    alpha: float = 0.05,
    rng: np.random.Generator | None = None,
) -> tuple[float, float, float]:
    """(point, lo, hi): the statistic of the pooled scores and its stratified-bootstrap percentile CI."""
    if not scores_by_task:
        raise ValueError("stratified_bootstrap_ci needs at least one task")
    rng = np.random.default_rng(0) if rng is None else rng
    pooled = np.concatenate([np.asarray(s, dtype=float).ravel() for s in scores_by_task.values()])
    point = float(statistic(pooled))
    resampled = np.concatenate(list(_resample_within_tasks(scores_by_task, reps, rng).values()), axis=1)
    try:  # a statistic that takes axis= (iqm, np.mean, np.median) scores every resample in one call
        boot = np.asarray(statistic(resampled, axis=1), dtype=float)
    except TypeError:
        boot = np.array([])
    if boot.shape != (reps,):
        boot = np.array([statistic(row) for row in resampled], dtype=float)
    lo, hi = _percentile_ci(boot, alpha)
    return point, lo, hi


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + 0.5 P(X = Y) over all pairs of one task's runs, i.e. the Mann-Whitney U of x divided by n*m."""
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.size == 0 or y.size == 0:
        raise ValueError("probability_of_improvement needs at least one run in each sample")
    diff = x[:, None] - y[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def probability_of_improvement_across_tasks(
    x_by_task: Mapping[str, np.ndarray], y_by_task: Mapping[str, np.ndarray]
) -> float:
    """rliable's average probability of improvement: the per-task P(X > Y) averaged over the tasks both have."""
    tasks = sorted(set(x_by_task) & set(y_by_task))
    if not tasks:
        raise ValueError("the two score sets share no task")
    return float(np.mean([probability_of_improvement(x_by_task[t], y_by_task[t]) for t in tasks]))


def probability_of_improvement_ci(
    x_by_task: Mapping[str, np.ndarray],
    y_by_task: Mapping[str, np.ndarray],
    reps: int = 2000,
    alpha: float = 0.05,
    rng: np.random.Generator | None = None,
) -> tuple[float, float, float]:
    """(point, lo, hi) of the average probability of improvement, runs of X and of Y resampled within each task."""
    rng = np.random.default_rng(0) if rng is None else rng
    tasks = sorted(set(x_by_task) & set(y_by_task))
    if not tasks:
        raise ValueError("the two score sets share no task")
    point = probability_of_improvement_across_tasks(x_by_task, y_by_task)
    x_boot = _resample_within_tasks({t: x_by_task[t] for t in tasks}, reps, rng)
    y_boot = _resample_within_tasks({t: y_by_task[t] for t in tasks}, reps, rng)
    per_task = []
    for t in tasks:  # (reps, n, 1) - (reps, 1, m): all pairs within each resample at once
        diff = x_boot[t][:, :, None] - y_boot[t][:, None, :]
        per_task.append(np.mean((diff > 0) + 0.5 * (diff == 0), axis=(1, 2)))
    lo, hi = _percentile_ci(np.mean(per_task, axis=0), alpha)
    return point, lo, hi


def bootstrap_mean_band(
    curves: np.ndarray, reps: int = 2000, alpha: float = 0.05, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean curve across runs (rows) and its pointwise bootstrap percentile band, each of shape (points,)."""
    curves = np.asarray(curves, dtype=float)
    if curves.ndim != 2 or curves.shape[0] == 0:
        raise ValueError(f"bootstrap_mean_band needs curves of shape (runs, points), got {curves.shape}")
    rng = np.random.default_rng(0) if rng is None else rng
    runs = curves.shape[0]
    idx = rng.integers(0, runs, size=(reps, runs))
    boot_means = curves[idx].mean(axis=1)  # (reps, points)
    lo, hi = np.percentile(boot_means, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return curves.mean(axis=0), lo, hi


def min_attainable_p(n: int, m: int) -> float:
    """Smallest two-sided exact Mann-Whitney p-value for samples of sizes n and m (no ties): 2 / C(n+m, n)."""
    return min(1.0, 2.0 / comb(n + m, n))
