"""Statistics for comparing runs: AUC, exact rank tests, Holm, attainable p, power, IQM and stratified bootstraps.

Pure numpy, no plotting, no file I/O (scipy.stats takes seconds to import; the report's error paths should not
wait for it). The bootstrap definitions follow rliable (Agarwal et al., 2021): runs are resampled within each task
independently and the statistic is applied to the pooled resample; confidence intervals are percentile intervals.
Every random draw takes a generator seeded by the caller (default 0), so a report is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import comb

import numpy as np

Statistic = Callable[[np.ndarray], float]
EXACT_LIMIT = 2**62  # count every split while the number of splits fits an int64; Monte Carlo beyond
MONTE_CARLO_REPS = 100_000


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


def auc_until(x: np.ndarray, returns: np.ndarray, horizon: float, start: float = 0.0) -> float:
    """Mean return over [start, horizon] of the piecewise-linear curve, held flat outside the points it has.

    Used on the time axes, where every run of a task is cut at one common horizon so arms compare at equal budget.
    """
    x = np.asarray(x, dtype=float)
    returns = np.asarray(returns, dtype=float)
    keep = np.isfinite(x) & np.isfinite(returns)
    x, returns = x[keep], returns[keep]
    if x.size == 0 or not np.isfinite(horizon):
        return float("nan")
    order = np.argsort(x, kind="stable")
    x, returns = x[order], returns[order]
    if horizon <= start:
        return float(np.interp(start, x, returns))
    grid = np.unique(np.concatenate([[start, horizon], x[(x > start) & (x < horizon)]]))
    values = np.interp(grid, x, returns)
    return float(np.sum(np.diff(grid) * (values[1:] + values[:-1]) / 2.0) / (horizon - start))


# ---------------------------------------------------------------- Mann-Whitney U with permutation p-values


@dataclass(frozen=True)
class RankTest:
    """A two-sided Mann-Whitney test: U of the first sample, its permutation p-value and how p was computed."""

    u: float
    p: float
    method: str  # "exact" (every split counted) or "monte carlo (R permutations, seed S)"


def _doubled_midranks(pooled: np.ndarray) -> np.ndarray:
    """Twice the average (mid) rank of each value: an integer even with ties, so rank sums compare exactly."""
    order = np.argsort(pooled, kind="stable")
    ordered = pooled[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # first sorted position of each tie block
    ends = np.r_[starts[1:], ordered.size]  # one past the last
    doubled = np.empty(pooled.size, dtype=np.int64)
    doubled[order] = np.repeat(starts + ends + 1, ends - starts)  # ranks start..end-1 (1-based +1) average x 2
    return doubled


def _rank_sum_counts(doubled_ranks: np.ndarray, k: int) -> np.ndarray:
    """counts[s] = how many k-subsets of the items have doubled rank sum s (a subset-sum count, ties included)."""
    total = int(doubled_ranks.sum())
    counts = np.zeros((k + 1, total + 1), dtype=np.int64)
    counts[0, 0] = 1
    for r in doubled_ranks:
        shifted = counts[:-1, : total + 1 - r].copy()
        counts[1:, r:] += shifted
    return counts[k]


def mann_whitney(a: np.ndarray, b: np.ndarray, mc_reps: int = MONTE_CARLO_REPS, seed: int = 0) -> RankTest:
    """Two-sided Mann-Whitney U test with a permutation p-value that stays exact with ties.

    p = P(|W - E W| >= |w - E W|) over relabellings of the pooled runs, W the rank sum (midranks for ties).
    Every split is counted while C(n+m, n) < 2^62 (any realistic seed count); beyond, `mc_reps` random
    relabellings with a fixed seed give p = (1 + hits) / (1 + reps). All values tied gives p = 1.
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("mann_whitney needs at least one value in each sample")
    n, m = a.size, b.size
    ranks = _doubled_midranks(np.concatenate([a, b]))
    u = float(ranks[:n].sum() / 2 - n * (n + 1) / 2)
    small = ranks[:n] if n <= m else ranks[n:]  # count subsets of the smaller sample: same test, fewer states
    k = small.size
    expected2 = k * (n + m + 1)  # doubled expected rank sum of the smaller sample
    observed = abs(int(small.sum()) - expected2)
    splits = comb(n + m, k)
    if splits < EXACT_LIMIT:
        counts = _rank_sum_counts(ranks, k)
        sums = np.arange(counts.size)
        hits = int(counts[np.abs(sums - expected2) >= observed].sum())
        return RankTest(u, min(1.0, hits / splits), "exact")
    rng = np.random.default_rng(seed)
    hits, done = 0, 0
    while done < mc_reps:
        chunk = min(10_000, mc_reps - done)
        picks = np.argsort(rng.random((chunk, n + m)), axis=1)[:, :k]
        hits += int(np.sum(np.abs(ranks[picks].sum(axis=1) - expected2) >= observed))
        done += chunk
    return RankTest(u, (1 + hits) / (1 + mc_reps), f"monte carlo ({mc_reps} permutations, seed {seed})")


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given), monotone and capped at 1."""
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


# ---------------------------------------------------------------- what a design can reach


def _no_tie_u_counts(n: int, m: int) -> np.ndarray:
    """counts[u] = how many of the C(n+m, n) splits of n+m untied values give U = u (u = 0 .. n*m)."""
    counts = _rank_sum_counts(2 * np.arange(1, n + m + 1, dtype=np.int64), min(n, m))
    return counts[counts.nonzero()[0].min():][::2]  # doubled rank sums step by 2 from the smallest, U = 0, 1, ...


def no_tie_p(n: int, m: int, u_extreme: int = 0) -> float:
    """Two-sided exact p of U = u_extreme (or n*m - u_extreme) for samples of n and m untied values.

    u_extreme = 0 is the smallest attainable p (every run of one sample above every run of the other): 2 / C(n+m, n).
    u_extreme = 1 is that outcome with one pair out of order.
    """
    if n < 1 or m < 1:
        return 1.0
    tail = int(_no_tie_u_counts(n, m)[: u_extreme + 1].sum())
    return min(1.0, 2 * tail / comb(n + m, n))


def attainable_holm(sizes: list[tuple[int, int]], u_extreme: int = 0,
                    observed: list[float] | None = None) -> np.ndarray:
    """Per test of one Holm family, the smallest Holm-adjusted p it can reach with these sample sizes.

    Holm's adjusted p-values never decrease when a raw p increases, so each test's best case is the family in
    which every test sits at its own smallest attainable p: the Holm adjustment of those floors. Ties can push an
    exact p below the untied floor, so passing the `observed` raw p-values lowers each floor to them where they are
    smaller; then a significant row always has an attainable value below alpha and a warning built on these never
    contradicts the table.
    """
    floors = np.array([no_tie_p(n, m, u_extreme) for n, m in sizes])
    if observed is not None:
        floors = np.minimum(floors, np.asarray(observed, dtype=float))
    return holm(floors)


def seeds_needed(tests: int, alpha: float = 0.05, u_extreme: int = 0, limit: int = 200) -> int | None:
    """Smallest equal seed count per arm at which `tests` Holm-corrected tests can reach p < alpha (None if > limit).

    u_extreme = 0: reachable only when every seed of one arm beats every seed of the other; 1: with a pair to spare.
    """
    for n in range(1, limit + 1):
        if tests * no_tie_p(n, n, u_extreme) < alpha:
            return n
    return None


def critical_u(n: int, m: int, alpha: float) -> int | None:
    """Smallest k such that U >= k (or U <= n*m - k) gives two-sided exact p <= alpha without ties; None if none."""
    if n < 1 or m < 1:
        return None
    tail_p = 2 * np.cumsum(_no_tie_u_counts(n, m)) / comb(n + m, n)  # p of U = j pairs out of order, j = 0, 1, ...
    inversions = int(np.sum(tail_p[: n * m // 2 + 1] <= alpha))  # tail_p rises with j: these are j = 0 .. count-1
    return None if inversions == 0 else n * m - (inversions - 1)


def min_detectable_effect(a: np.ndarray, b: np.ndarray, alpha: float, power: float = 0.8, reps: int = 2000,
                          seed: int = 0) -> float:
    """Smallest location shift between two arms that the two-sided exact test at `alpha` detects with `power`.

    Simulated with the observed spread: each arm's values centred on its mean, resampled with replacement plus a
    Gaussian jitter and shrunk back to the arm's sample variance (a variance-preserving smoothed bootstrap, so draws
    do not tie). For one draw, U of (a + d) against b reaches the critical value k exactly when d exceeds the k-th
    smallest pairwise gap b_j - a_i, so each draw gives the shift it needs; the `power` quantile over draws is the
    answer. inf when the test cannot reach `alpha` at these sample sizes.
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    n, m = a.size, b.size
    k = critical_u(n, m, alpha)
    if k is None:
        return float("inf")
    if n + m < 3:
        return float("nan")
    pooled_var = (np.sum((a - a.mean()) ** 2) + np.sum((b - b.mean()) ** 2)) / (n + m - 2)
    bandwidth2 = (1.06 * (n + m) ** -0.2) ** 2 * pooled_var  # Silverman's rule, squared
    rng = np.random.default_rng(seed)

    def draws(x: np.ndarray) -> np.ndarray:
        centred = x - x.mean()
        target = pooled_var if x.size < 2 else centred.var(ddof=1)
        shrink = np.sqrt(target / (centred.var() + bandwidth2)) if target > 0 else 0.0
        jitter = np.sqrt(bandwidth2) * rng.standard_normal((reps, x.size))
        return shrink * (centred[rng.integers(0, x.size, (reps, x.size))] + jitter)

    xs, ys = draws(a), draws(b)
    gaps = (ys[:, None, :] - xs[:, :, None]).reshape(reps, n * m)
    needed = np.partition(gaps, k - 1, axis=1)[:, k - 1]
    return float(max(0.0, np.quantile(needed, power)))


# ---------------------------------------------------------------- aggregates and bootstraps


def iqm(x: np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Interquartile mean: the mean of the middle 50% of the scores; pooled if axis=None.

    As scipy's trim_mean(x, 0.25): int(0.25 n) scores are cut from each end, so with fewer than 4 nothing is.
    """
    x = np.asarray(x, dtype=float)
    if axis is None:
        x = x.ravel()
        axis = 0
    n = x.shape[axis]
    if n == 0:
        return float("nan")
    cut = int(0.25 * n)
    result = np.take(np.sort(x, axis=axis), np.arange(cut, n - cut), axis=axis).mean(axis=axis)
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
