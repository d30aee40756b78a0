"""The study's statistics from loaded runs: time-axis scores, per-arm tables, primary and exploratory tests, the
attainable-significance check, per-task verdicts (per step and per second) and the across-task aggregates.

Primary question: each arm against the reference arm on the spec's primary metric, on every task; those tests form
ONE Holm family for the whole study. Every other test (other pairs, other metrics) is exploratory: it gets its own
Holm family and is marked so.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np

from core.analysis import stats
from core.analysis.runs import STATES, Run
from core.analysis.spec import METRICS, SPEEDS, ReportSpec

BOOTSTRAP_REPS = 2000
AXES = (  # (metric, how the verdict names it)
    ("auc", "per env step (AUC against frames)"),
    ("auc_wall", "per second of wall-clock (AUC against elapsed time)"),
    ("auc_compute", "per unit of measured update cost (AUC against updates x seconds per update)"),
)


def score_time_axes(runs: list[Run], tasks: list[str]) -> dict[str, dict[str, float]]:
    """Fill auc_wall and auc_compute of complete runs; returns task -> {metric: common horizon in seconds}.

    Each task's runs are cut at the shortest run's end on that axis, so every arm is scored over the same budget.
    The compute axis is updates x the arm's median seconds per update on that task, which removes a run's own
    timing noise (other jobs on the machine) while keeping each arm's measured cost.
    """
    horizons = {}
    for task in tasks:
        members = [r for r in runs if r.task == task]
        cost = defaultdict(list)
        for r in members:
            cost[r.group].append(r.speed.get("s_per_update", math.nan))
        for r in members:
            costs = [c for c in cost[r.group] if math.isfinite(c)]
            r.compute = r.updates * (float(np.median(costs)) if costs else math.nan)
        horizons[task] = {}
        for metric, axis in (("auc_wall", "wall"), ("auc_compute", "compute")):
            ends = [float(np.nanmax(getattr(r, axis))) for r in members
                    if getattr(r, axis).size and np.isfinite(getattr(r, axis)).any()]
            horizon = min(ends) if ends else math.nan
            horizons[task][metric] = horizon
            for r in members:
                r.scores[metric] = stats.auc_until(getattr(r, axis), r.returns, horizon)
    return horizons


def _finite(values) -> np.ndarray:
    values = np.asarray(list(values), dtype=float)
    return values[np.isfinite(values)]


def _mean(values) -> float:
    values = _finite(values)
    return float(values.mean()) if values.size else math.nan


def state_counts(runs: list[Run]) -> dict[str, int]:
    """complete / failed / diverged / running / missing / unusable -> count."""
    counts = dict.fromkeys((*STATES, "unusable"), 0)
    for r in runs:
        counts[r.state] += 1
    return counts


def counts_text(counts: dict[str, int]) -> str:
    """'5/7 complete; 1 failed, 1 missing'."""
    total = sum(counts.values())
    others = ", ".join(f"{v} {k}" for k, v in counts.items() if k != "complete" and v)
    return f"{counts['complete']}/{total} complete" + (f"; {others}" if others else "")


def group_table(runs: list[Run], tasks: list[str], groups: list[str], spec: ReportSpec) -> list[dict]:
    """Per (task, group) with any run: run counts by state, then scores, speeds and extras over complete runs."""
    rows = []
    for task, group in itertools.product(tasks, groups):
        members = [r for r in runs if r.task == task and r.group == group]
        if not members:
            continue
        done = [r for r in members if r.state == "complete"]
        final = _finite(r.scores.get("final_return") for r in done)
        row = {"task": task, "group": group, **state_counts(members), "n": len(done),
               "seeds": " ".join("?" if r.seed is None else str(r.seed) for r in done),
               "final_std": float(final.std(ddof=1)) if final.size > 1 else math.nan,
               "iqm_final": stats.iqm(final) if final.size else math.nan}
        row |= {m: _mean(r.value(m) for r in done) for m in (*METRICS, *SPEEDS)}
        row |= {c.name: _mean(r.extras.get(c.name) for r in done) for c in spec.extra_columns}
        rows.append(row)
    return rows


def _test_row(family: str, task: str, a: str, b: str, metric: str, xa: np.ndarray, xb: np.ndarray) -> dict:
    result = stats.mann_whitney(xa, xb)
    return {"family": family, "task": task, "group_a": a, "group_b": b, "metric": metric, "n_a": xa.size,
            "n_b": xb.size, "mean_a": float(xa.mean()), "mean_b": float(xb.mean()),
            "diff": float(xa.mean() - xb.mean()), "U": result.u, "p": result.p, "p_method": result.method}


def _scores(runs: list[Run], task: str, group: str, metric: str) -> np.ndarray:
    return _finite(r.scores.get(metric) for r in runs if r.task == task and r.group == group)


def _flag(all_runs: list[Run], task: str, group: str, role: str) -> str:
    counts = state_counts([r for r in all_runs if r.task == task and r.group == group])
    bad = ", ".join(f"{v} {k}" for k, v in counts.items() if k != "complete" and v)
    return f"{role}: {bad}" if bad else ""


def run_tests(usable: list[Run], all_runs: list[Run], tasks: list[str], groups: list[str], reference: str | None,
              spec: ReportSpec) -> tuple[list[dict], list[str]]:
    """(test rows, notes). Primary rows: each arm vs the reference on the primary metric, one Holm family over all
    tasks, with the smallest attainable Holm p and the minimum detectable effect. Exploratory rows: every other pair
    and metric, one Holm family of their own."""
    primary, exploratory, notes = [], [], []
    for task in tasks:
        present = [g for g in groups if any(r.task == task and r.group == g for r in usable)]
        ordered = ([reference] if reference in present else []) + [g for g in present if g != reference]
        if reference is not None and reference not in present and present:
            notes.append(f"the reference arm `{reference}` has no complete run on {task}: no primary test there")
        for b, a in itertools.combinations(ordered, 2):  # the reference, when present, is always group B
            for metric in METRICS:
                xa, xb = _scores(usable, task, a, metric), _scores(usable, task, b, metric)
                is_primary = b == reference and metric == spec.primary_metric
                if xa.size == 0 or xb.size == 0:
                    if is_primary:
                        notes.append(f"{task}: `{a}` vs `{b}` on {metric} not testable (no finite scores)")
                    continue
                row = _test_row("primary" if is_primary else "exploratory", task, a, b, metric, xa, xb)
                row["flag"] = "; ".join(f for f in (_flag(all_runs, task, a, "arm"),
                                                    _flag(all_runs, task, b, "reference")) if f)
                (primary if is_primary else exploratory).append(row)
    for family in (primary, exploratory):
        for row, p_holm in zip(family, stats.holm([r["p"] for r in family]), strict=True):
            row["p_holm"] = float(p_holm)
            row["significant"] = bool(p_holm < spec.alpha)
    if primary:
        reachable = stats.attainable_holm([(r["n_a"], r["n_b"]) for r in primary], observed=[r["p"] for r in primary])
        for row, best in zip(primary, reachable, strict=True):
            xa = _scores(usable, row["task"], row["group_a"], row["metric"])
            xb = _scores(usable, row["task"], row["group_b"], row["metric"])
            row["attainable_p_holm"] = float(best)
            # alpha / m: the threshold Holm's first step applies, so the effect is detectable wherever it ranks
            row["mde"] = stats.min_detectable_effect(xa, xb, spec.alpha / len(primary), spec.power)
    return primary + exploratory, notes


def design_check(primary: list[dict], spec: ReportSpec) -> list[str]:
    """Lines on what this design can reach, computed from the primary family's seed counts; empty when it is fine.

    Never contradicts the table: 'cannot reach' is said only of tests whose attainable Holm p is >= alpha, and a
    significant row always has an attainable Holm p below its own adjusted p.
    """
    if not primary:
        return []
    m, alpha = len(primary), spec.alpha
    tests = f"{m} test{'s' if m > 1 else ''}"
    need = stats.seeds_needed(m, alpha)
    spare = stats.seeds_needed(m, alpha, u_extreme=1)
    seeds = sorted({n for r in primary for n in (r["n_a"], r["n_b"])})
    seeds_text = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]} to {seeds[-1]}"
    best = min(r["attainable_p_holm"] for r in primary)
    unreachable = [r for r in primary if r["attainable_p_holm"] >= alpha]
    fix = (f"{need} seeds per arm would make p < {alpha:g} attainable (only if every seed of an arm beats every seed "
           f"of the reference), {spare} per arm would leave one seed pair to spare; 10 per arm is the rliable "
           "recommendation")
    if len(unreachable) == m:
        return [f"**No primary test can reach p < {alpha:g}, whatever the data.** With {seeds_text} complete seeds "
                f"per arm and {tests} in the primary Holm family, the smallest attainable Holm-adjusted p is "
                f"{best:.3g}. {fix}. Read 'not significant' below as 'not testable', not 'no difference'."]
    lines = []
    if unreachable:
        lines.append(f"{len(unreachable)} of {m} primary tests cannot reach p < {alpha:g} with their seed counts "
                     f"(marked 'cannot reach' in the table); {fix}.")
    with_spare = stats.attainable_holm([(r["n_a"], r["n_b"]) for r in primary], u_extreme=1)  # the design alone
    if all(v >= alpha for v in with_spare):
        lines.append(f"p < {alpha:g} is attainable (smallest Holm-adjusted p {best:.3g} over {tests}) only when "
                     "every seed of an arm beats every seed of the reference: with one pair out of order no test can "
                     f"reach it. {spare} seeds per arm would leave a pair to spare.")
    return lines


def _leader(rows: list[dict], task: str, metric: str) -> dict | None:
    candidates = [r for r in rows if r["task"] == task and math.isfinite(r.get(metric, math.nan))]
    return max(candidates, key=lambda r: r[metric]) if candidates else None


def verdicts(group_rows: list[dict], tests: list[dict], tasks: list[str], reference: str | None,
             horizons: dict[str, dict[str, float]]) -> dict[str, list[str]]:
    """Per task, one line per axis: which arm leads on mean AUC, and which arms beat or trail the reference."""
    out = {}
    for task in tasks:
        lines, leaders = [], {}
        for metric, name in AXES:
            best = _leader(group_rows, task, metric)
            if best is None:
                lines.append(f"- {name[0].upper() + name[1:]}: not available (no run has this axis).")
                continue
            leaders[metric] = best["group"]
            horizon = horizons.get(task, {}).get(metric)
            within = f" over the first {horizon:.0f} s" if horizon is not None and math.isfinite(horizon) else ""
            role = " (the reference)" if best["group"] == reference else ""
            text = f"- {name[0].upper() + name[1:]}{within}: `{best['group']}`{role} leads (mean {best[metric]:.1f})"
            ref = next((r for r in group_rows if r["task"] == task and r["group"] == reference), None)
            if ref is not None and math.isfinite(ref.get(metric, math.nan)):
                vs = [t for t in tests if t["task"] == task and t["group_b"] == reference and t["metric"] == metric]
                family = vs[0]["family"] if vs else "primary"
                better = [f"`{t['group_a']}`" for t in vs if t["significant"] and t["diff"] > 0]
                worse = [f"`{t['group_a']}`" for t in vs if t["significant"] and t["diff"] < 0]
                text += (f"; reference `{reference}` {ref[metric]:.1f}. Significantly better than the reference "
                         f"({family}, Holm): {', '.join(better) or 'none'}; significantly worse: "
                         f"{', '.join(worse) or 'none'}.")
            lines.append(text + ("" if text.endswith(".") else "."))
        step, second = leaders.get("auc"), leaders.get("auc_wall")
        if step and second:
            lines.append(f"- Per step and per second {'agree' if step == second else 'disagree'}: "
                         + (f"`{step}` leads on both." if step == second
                            else f"`{step}` learns most per env step, `{second}` most per second of wall-clock."))
        out[task] = lines
    return out


def aggregate_table(usable: list[Run], groups: list[str], reference: str | None, spec: ReportSpec) -> list[dict]:
    """Across tasks: IQM per group and probability of improvement over the reference, stratified-bootstrap CIs."""
    rows = []
    for metric in METRICS:
        by_group: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
        for group, task in {(r.group, r.task) for r in usable}:
            values = _scores(usable, task, group, metric)
            if values.size:
                by_group[group][task] = values
        for group in groups:
            if not by_group.get(group):
                continue
            point, lo, hi = stats.stratified_bootstrap_ci(by_group[group], stats.iqm, BOOTSTRAP_REPS, spec.alpha,
                                                          np.random.default_rng(0))
            rows.append({"statistic": "iqm", "metric": metric, "group": group, "reference": "",
                         "tasks": len(by_group[group]), "runs": sum(v.size for v in by_group[group].values()),
                         "point": point, "lo": lo, "hi": hi})
        for group in groups:
            shared = sorted(set(by_group.get(group, {})) & set(by_group.get(reference, {})))
            if reference is None or group == reference or not shared:
                continue
            point, lo, hi = stats.probability_of_improvement_ci(
                by_group[group], by_group[reference], BOOTSTRAP_REPS, spec.alpha, np.random.default_rng(0))
            rows.append({"statistic": "probability_of_improvement", "metric": metric, "group": group,
                         "reference": reference, "tasks": len(shared),
                         "runs": sum(by_group[group][t].size for t in shared), "point": point, "lo": lo, "hi": hi})
    return rows
