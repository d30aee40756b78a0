"""Report from run directories alone: report.md, CSV tables and PNG figures for any idea's runs or sweeps.

A run directory is a folder holding `.hydra/config.yaml`; its `eval.csv`, `train.csv` and `summary.json` are read if
present. Only complete runs with evaluation rows enter the statistics; every other run is listed with its reason.
The figures are drawn by core.figures.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from core import analysis

MISSING = "-"  # value shown for a group key a run's config lacks
METRICS = ("auc", "final_return")  # the per-run scores every test and aggregate is computed on
BOOTSTRAP_REPS = 2000
ALPHA = 0.05


@dataclass
class Run:
    """One run directory as read from disk; `reason` is empty when the run enters the statistics."""

    dir: Path
    task: str = MISSING
    values: dict = field(default_factory=dict)  # group key -> value as text (MISSING when absent)
    seed: int | None = None
    status: str = "missing"
    reason: str = ""
    action_repeat: int | None = None
    frames: np.ndarray = field(default_factory=lambda: np.zeros(0))
    returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    final_return: float = math.nan
    auc: float = math.nan
    env_steps_per_s: float = math.nan
    nfe: float = math.nan
    group: str = ""


def _natural_key(text: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(text))]


def find_run_dirs(root: Path) -> list[Path]:
    """Run directories at or below `root`: folders that hold `.hydra/config.yaml`, in natural order (0, 1, ..., 10)."""
    if (root / ".hydra" / "config.yaml").is_file():
        return [root]
    found = {p.parent.parent for p in root.rglob("config.yaml") if p.parent.name == ".hydra"}
    return sorted(found, key=lambda p: _natural_key(p.as_posix()))


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _train_metric(run_dir: Path, column: str, how: str) -> float:
    values = np.array([_float(r.get(column)) for r in _read_csv(run_dir / "train.csv")])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan
    return float(values[-1] if how == "last" else values.mean())


def load_run(run_dir: Path, group_keys: list[str]) -> Run:
    """Read one run directory; never raises for a broken run, it sets `status` and `reason` instead."""
    run = Run(dir=run_dir)
    try:
        config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        run.status, run.reason = "unreadable", f"cannot read .hydra/config.yaml: {err}"
        return run
    run.task = str(config.get("task", MISSING))
    run.values = {k: MISSING if config.get(k) is None else str(config[k]) for k in ["idea", *group_keys]}
    run.seed = config.get("seed") if isinstance(config.get("seed"), int) else None
    run.action_repeat = config.get("action_repeat") if isinstance(config.get("action_repeat"), int) else None

    rows = [(_float(r.get("step")), _float(r.get("frame")), _float(r.get("return")))
            for r in _read_csv(run_dir / "eval.csv")]
    rows = [r for r in rows if math.isfinite(r[2]) and (math.isfinite(r[1]) or math.isfinite(r[0]))]
    if rows:
        steps, frames, returns = (np.array(c) for c in zip(*rows, strict=True))
        frames = np.where(np.isfinite(frames), frames, steps * (run.action_repeat or 1))
        order = np.argsort(frames, kind="stable")
        run.frames, run.returns = frames[order], returns[order]
        run.auc = analysis.auc(run.frames, run.returns)

    summary_path = run_dir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    except (OSError, ValueError) as err:
        run.status, run.reason = "unreadable", f"cannot read summary.json: {err}"
        return run
    if summary is None:
        run.reason = ("no summary.json and no eval rows (never started or died before the first evaluation)"
                      if not rows else f"no summary.json (eval.csv has {len(rows)} rows)")
        return run

    run.status = str(summary.get("status", "unknown"))
    final = summary.get("final_return")
    run.final_return = _float(final) if final is not None else (float(run.returns[-1]) if rows else math.nan)
    run.env_steps_per_s = _float(summary.get("env_steps_per_s"))
    if not math.isfinite(run.env_steps_per_s):
        run.env_steps_per_s = _train_metric(run_dir, "time/env_steps_per_s", "mean")
    run.nfe = _float(summary.get("nfe_per_action"))
    if not math.isfinite(run.nfe):
        run.nfe = _train_metric(run_dir, "perf/nfe_per_action", "last")

    if run.status == "failed":
        detail = summary.get("error") or summary.get("reason")
        run.reason = "status failed" + (f": {detail}" if detail else "")
    elif run.status == "running":
        run.reason = f"status running (step {summary.get('step', '?')} of {summary.get('steps', '?')})"
    elif run.status != "complete":
        run.reason = f"unknown status {run.status!r}"
    elif not rows:
        run.reason = "status complete but eval.csv has no rows"
    elif not math.isfinite(run.final_return):
        run.reason = "status complete but no final return"
    return run


def _sort_key(values: tuple) -> list:
    return [(0, float(v), "") if _is_number(v) else (1, 0.0, v) for v in values]


def _is_number(text: str) -> bool:
    return math.isfinite(_float(text))


def assign_groups(runs: list[Run], group_keys: list[str]) -> tuple[list[str], list[str], dict]:
    """Label each run's group; returns (groups in sort order, keys shown in labels, {fixed key: value}).

    A key with one value across every run is left out of the labels and reported as fixed; `idea` joins the keys
    only when runs of several ideas are mixed. A label that would be a bare number reads `key=value` instead.
    """
    keys = (["idea"] if len({r.values.get("idea") for r in runs}) > 1 else []) + list(group_keys)
    varying = [k for k in keys if len({r.values.get(k, MISSING) for r in runs}) > 1]
    shown = varying or list(group_keys)
    fixed = {k: runs[0].values.get(k, MISSING) for k in group_keys if k not in shown} if runs else {}
    by_values = {}
    for run in runs:
        values = tuple(run.values.get(k, MISSING) for k in shown)
        parts = [v for v in values if v != MISSING] or [MISSING]
        label = "/".join(parts)
        if len(shown) == 1 and _is_number(values[0]):
            label = f"{shown[0]}={values[0]}"
        run.group = label
        by_values[values] = label
    order = [by_values[v] for v in sorted(by_values, key=_sort_key)]
    return order, shown, fixed


def pick_reference(runs: list[Run], groups: list[str], requested: str | None = None) -> str:
    """The reference group: `requested`, else the first with 'midpoint' and 'linear' (FlowRL's default), else first."""
    if requested:
        if requested not in groups:
            raise ValueError(f"reference group {requested!r} is not one of: {', '.join(groups)}")
        return requested
    flowrl = {r.group for r in runs if {"midpoint", "linear"} <= set(r.values.values())}
    return next((g for g in groups if g in flowrl), groups[0])


def scores(runs: list[Run], metric: str) -> dict[str, dict[str, np.ndarray]]:
    """group -> task -> per-seed scores of `metric` (usable runs only)."""
    out: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        out[run.group][run.task].append(getattr(run, metric))
    return {g: {t: np.array(v) for t, v in by_task.items()} for g, by_task in out.items()}


def group_table(runs: list[Run], tasks: list[str], groups: list[str]) -> list[dict]:
    """Per (task, group): n, final mean/std (std with ddof=1), AUC mean, IQM of final returns, speed, NFE."""
    rows = []
    for task, group in itertools.product(tasks, groups):
        members = [r for r in runs if r.task == task and r.group == group]
        if not members:
            continue
        final = np.array([r.final_return for r in members])
        rows.append({
            "task": task, "group": group, "n": len(members),
            "seeds": " ".join(str(r.seed) if r.seed is not None else "?" for r in members),
            "final_mean": float(final.mean()),
            "final_std": float(final.std(ddof=1)) if final.size > 1 else math.nan,
            "auc_mean": float(np.mean([r.auc for r in members])),
            "iqm": analysis.iqm(final),
            "env_steps_per_s": _nanmean([r.env_steps_per_s for r in members]),
            "nfe": _nanmean([r.nfe for r in members]),
        })
    return rows


def _nanmean(values: list[float]) -> float:
    values = np.array(values, dtype=float)
    return float(values[np.isfinite(values)].mean()) if np.isfinite(values).any() else math.nan


def pairwise_tests(runs: list[Run], tasks: list[str], groups: list[str]) -> list[dict]:
    """Mann-Whitney U for every pair of groups and metric within a task; Holm over all of that task's tests."""
    rows = []
    for task in tasks:
        present = [g for g in groups if any(r.task == task and r.group == g for r in runs)]
        family = []
        for (a, b), metric in itertools.product(itertools.combinations(present, 2), METRICS):
            xa = [getattr(r, metric) for r in runs if r.task == task and r.group == a]
            xb = [getattr(r, metric) for r in runs if r.task == task and r.group == b]
            u, p = analysis.mann_whitney(xa, xb)
            family.append({"task": task, "group_a": a, "group_b": b, "metric": metric, "n_a": len(xa),
                           "n_b": len(xb), "U": u, "p": p})
        for row, p_holm in zip(family, analysis.holm([r["p"] for r in family]), strict=True):
            row["p_holm"] = float(p_holm)
            row["significant"] = bool(p_holm < ALPHA)
        rows += family
    return rows


def aggregate_table(runs: list[Run], groups: list[str], reference: str) -> list[dict]:
    """Across tasks: IQM per group and probability of improvement over `reference`, with stratified-bootstrap CIs."""
    rows = []
    for metric in METRICS:
        by_group = scores(runs, metric)
        for group in groups:
            point, lo, hi = analysis.stratified_bootstrap_ci(
                by_group[group], analysis.iqm, BOOTSTRAP_REPS, ALPHA, np.random.default_rng(0))
            rows.append({"statistic": "iqm", "metric": metric, "group": group, "reference": "",
                         "tasks": len(by_group[group]), "runs": sum(v.size for v in by_group[group].values()),
                         "point": point, "lo": lo, "hi": hi})
        for group in groups:
            shared = sorted(set(by_group[group]) & set(by_group[reference]))
            if group == reference or not shared:
                continue
            point, lo, hi = analysis.probability_of_improvement_ci(
                by_group[group], by_group[reference], BOOTSTRAP_REPS, ALPHA, np.random.default_rng(0))
            rows.append({"statistic": "probability_of_improvement", "metric": metric, "group": group,
                         "reference": reference, "tasks": len(shared),
                         "runs": sum(by_group[group][t].size for t in shared), "point": point, "lo": lo, "hi": hi})
    return rows


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------- markdown


def _fmt(x: float, digits: int = 1) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


def _p(x: float) -> str:
    return f"{x:.3g}" if x >= 0.001 else f"{x:.1e}"


def _md_table(headers: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows] + [""]


def _file_name(task: str) -> str:
    return "curves_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", task) + ".png"


def _markdown(ctx: dict) -> str:
    usable, bad, tasks = ctx["usable"], ctx["bad"], ctx["tasks"]
    rel, label_keys, reference = ctx["rel"], ctx["label_keys"], ctx["reference"]
    total = len(usable) + len(bad)
    out = [f"# {ctx['title']}", ""]
    inputs = ", ".join(f"`{rel(d)}`" for d in ctx["inputs"])
    out += [f"Read {total} run director{'y' if total == 1 else 'ies'} from {inputs} "
            f"(paths are relative to this report). {len(usable)} complete runs enter the statistics; "
            f"{len(bad)} missing, failed or unfinished runs are listed under "
            "[Missing or failed runs](#missing-or-failed-runs).", ""]
    fixed = ", ".join(f"{k} = {v}" for k, v in ctx["fixed"].items())
    out += [f"Tasks: {', '.join(tasks) or 'none'}. Groups are labelled `{label_keys}`"
            + (f"; the same in every run, so left out of the labels: {fixed}." if fixed else "."), ""]
    if not usable:
        out += ["No complete run with evaluation rows was found, so there are no statistics or figures.", ""]
    if reference:
        out += [f"Reference group for the probability of improvement: `{reference}`.", ""]
    for note in ctx["notes"]:
        out += [f"- Note: {note}"]
    out += [""] if ctx["notes"] else []

    for task in tasks:
        out += [f"## {task}", ""]
        out += _md_table(
            ["group", "n", "seeds", "final return (mean ± std)", "AUC (mean)", "IQM final", "env steps/s",
             "NFE/action"],
            [[r["group"], r["n"], r["seeds"], f"{_fmt(r['final_mean'])} ± {_fmt(r['final_std'])}",
              _fmt(r["auc_mean"]), _fmt(r["iqm"]), _fmt(r["env_steps_per_s"], 0), _fmt(r["nfe"], 1)]
             for r in ctx["group_rows"] if r["task"] == task])
        out += [f"![{task} learning curves]({_file_name(task)})", ""]
        tests = [r for r in ctx["stat_rows"] if r["task"] == task]
        out += ["Pairwise two-sided Mann-Whitney U tests (U is group A's statistic; Holm-adjusted over all "
                f"{len(tests)} tests of this task, both metrics):", ""]
        if tests:
            out += _md_table(["group A", "group B", "metric", "U", "p", "p (Holm)", "significant at 0.05"],
                             [[r["group_a"], r["group_b"], r["metric"], _fmt(r["U"]), _p(r["p"]), _p(r["p_holm"]),
                               "yes" if r["significant"] else "no"] for r in tests])
            floor = max(analysis.min_attainable_p(r["n_a"], r["n_b"]) for r in tests)
            if floor > ALPHA:
                out += [f"With these seed counts the smallest attainable p is {floor:.3g}, so no test can reach "
                        "0.05: add seeds before reading 'no' as 'no difference'.", ""]
        else:
            out += ["Only one group has runs on this task: nothing to compare.", ""]

    if usable:
        out += ["## Across tasks", ""]
        out += ["IQM of the per-run scores pooled over tasks, with 95% stratified-bootstrap CIs "
                f"({BOOTSTRAP_REPS} resamples, runs resampled within each task). Each group is aggregated only over "
                "the tasks where it has complete runs (the `tasks` column), so groups covering different tasks are "
                "not directly comparable. Returns are raw, not normalised: DMC returns share a 0-1000 scale.", ""]
        iqm_rows = [r for r in ctx["agg_rows"] if r["statistic"] == "iqm"]
        out += _md_table(["group", "metric", "tasks", "runs", "IQM", "95% CI"],
                         [[r["group"], r["metric"], r["tasks"], r["runs"], _fmt(r["point"]),
                           f"[{_fmt(r['lo'])}, {_fmt(r['hi'])}]"] for r in iqm_rows])
        poi_rows = [r for r in ctx["agg_rows"] if r["statistic"] == "probability_of_improvement"]
        out += [f"Probability of improvement over `{reference}`: P(X > Y) + ½ P(X = Y) for a random run X of the "
                "group and Y of the reference on the same task, averaged over the tasks both have (rliable's "
                "definition); 0.5 means no difference. 95% stratified-bootstrap CI.", ""]
        out += (_md_table(["group", "metric", "tasks", "P(group > reference)", "95% CI"],
                          [[r["group"], r["metric"], r["tasks"], _fmt(r["point"], 2),
                            f"[{_fmt(r['lo'], 2)}, {_fmt(r['hi'], 2)}]"] for r in poi_rows])
                if poi_rows else ["No other group shares a task with the reference.", ""])
        out += ["## Speed", "", "![speed per group](speed.png)", ""]
        out += ["## Final return and AUC per run", "", "![final return and AUC per run](final_auc.png)", ""]

    out += ["## Missing or failed runs", ""]
    out += (_md_table(["directory", "task", "group", "seed", "status", "reason"],
                      [[f"`{rel(r.dir)}`", r.task, r.group, "?" if r.seed is None else r.seed, r.status, r.reason]
                       for r in bad]) if bad else ["None: every run directory is complete.", ""])

    out += ["## How the numbers are made", ""]
    out += [
        "- Final return: `final_return` from summary.json (the last eval.csv row when it is null). "
        "Std is across seeds with ddof=1 (n/a for one seed).",
        "- AUC: trapezoid area under evaluation return against frames, divided by the frame span of the "
        "evaluations, so it is in return units (a flat curve at c has AUC c).",
        "- IQM: mean of the middle 50% of scores (scipy `trim_mean(x, 0.25)`; with fewer than 4 seeds nothing is "
        "trimmed and it equals the mean).",
        "- Curves: each group's runs are interpolated onto the evaluation frames of its first run (lowest seed) "
        "within the frame range every run of the group covers; the band is a pointwise 95% bootstrap CI of the mean.",
        "- Only runs with status `complete` and at least one evaluation row are used; bootstraps use a fixed seed "
        "(0), so the report is reproducible.",
        "",
        "Files: `runs.csv` (one row per run directory), `groups.csv` (per task and group), `stats.csv` (pairwise "
        "tests), `aggregate.csv` (IQM and probability of improvement across tasks).",
        "",
    ]
    return "\n".join(out)


# ---------------------------------------------------------------- entry points

RUN_COLUMNS = ["dir", "task", "group", "seed", "status", "final_return", "auc", "env_steps_per_s", "nfe", "reason"]
GROUP_COLUMNS = ["task", "group", "n", "final_mean", "final_std", "auc_mean", "iqm", "env_steps_per_s", "nfe"]
STAT_COLUMNS = ["task", "group_a", "group_b", "metric", "n_a", "n_b", "U", "p", "p_holm", "significant"]
AGG_COLUMNS = ["statistic", "metric", "group", "reference", "tasks", "runs", "point", "lo", "hi"]


def write_report(
    run_dirs: list[Path], out_dir: Path, group_keys: list[str], title: str, reference: str | None = None,
    inputs: list[Path] | None = None,
) -> Path:
    """Read the run directories and write report.md, runs/groups/stats/aggregate CSVs and PNGs; returns report.md."""
    unique = list(dict.fromkeys(Path(d).resolve() for d in run_dirs))
    if not unique:
        raise ValueError("no run directories to report on")
    runs = [load_run(d, group_keys) for d in unique]
    groups, shown, fixed = assign_groups(runs, group_keys)
    usable = [r for r in runs if not r.reason]
    bad = [r for r in runs if r.reason]
    tasks = sorted({r.task for r in usable}, key=_natural_key)
    used_groups = [g for g in groups if any(r.group == g for r in usable)]
    reference = pick_reference(usable, used_groups, reference) if used_groups else None

    seen: dict[tuple, int] = defaultdict(int)
    for r in usable:
        seen[(r.task, r.group, r.seed)] += 1
    notes = [f"seed {s} of {g} on {t} appears in {k} run directories; all are used"
             for (t, g, s), k in seen.items() if k > 1]

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def rel(p: Path) -> str:
        return os.path.relpath(Path(p).resolve(), out_dir.resolve())

    ctx = {"title": title, "usable": usable, "bad": bad, "tasks": tasks, "rel": rel,
           "label_keys": "/".join(shown), "fixed": fixed, "reference": reference, "notes": notes,
           "inputs": inputs or unique, "group_rows": group_table(usable, tasks, used_groups),
           "stat_rows": pairwise_tests(usable, tasks, used_groups),
           "agg_rows": aggregate_table(usable, used_groups, reference) if reference else []}

    _write_csv(out_dir / "runs.csv", [{**{c: getattr(r, c) for c in RUN_COLUMNS}, "dir": rel(r.dir)} for r in runs],
               RUN_COLUMNS)
    _write_csv(out_dir / "groups.csv", ctx["group_rows"], GROUP_COLUMNS)
    _write_csv(out_dir / "stats.csv", ctx["stat_rows"], STAT_COLUMNS)
    _write_csv(out_dir / "aggregate.csv", ctx["agg_rows"], AGG_COLUMNS)
    if usable:
        # imported here: core.figures imports this module, and matplotlib loads only when there is something to plot
        from core.figures import palette, plot_curves, plot_final_auc, plot_speed

        colors = palette(used_groups, "tab10")
        for task in tasks:
            plot_curves(usable, task, used_groups, colors, ctx["label_keys"], out_dir / _file_name(task))
        plot_speed(usable, tasks, used_groups, ctx["label_keys"], out_dir / "speed.png")
        plot_final_auc(usable, tasks, used_groups, colors, out_dir / "final_auc.png")
    report = out_dir / "report.md"
    report.write_text(_markdown(ctx))
    return report


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None, group_keys: list[str], title: str, prog: str | None = None) -> int:
    """CLI: `<prog> <run or sweep dirs...> [--out DIR] [--reference GROUP]`; returns the exit code (2 on bad input)."""
    parser = argparse.ArgumentParser(prog=prog, description=f"{title}: report.md, CSV statistics and PNG figures "
                                     "from run or sweep directories alone.")
    parser.add_argument("dirs", nargs="+", type=Path, help="run or sweep directories (searched recursively)")
    parser.add_argument("--out", type=Path, help="output folder (default: the single given directory, else ./report)")
    parser.add_argument("--reference", help="group label to compare against (default: midpoint/linear if present)")
    args = parser.parse_args(argv)
    run_dirs: list[Path] = []
    for d in args.dirs:
        if not d.is_dir():
            return _fail(f"no such directory: {d}")
        found = find_run_dirs(d)
        if not found:
            return _fail(f"no run directories (folders holding .hydra/config.yaml) under {d}")
        run_dirs += found
    out = args.out or (args.dirs[0] if len(args.dirs) == 1 else Path("report"))
    if out.exists() and not out.is_dir():
        return _fail(f"--out {out} exists and is not a directory")
    try:
        report = write_report(run_dirs, out, group_keys, title, args.reference, inputs=args.dirs)
    except ValueError as err:
        return _fail(str(err))
    n = len(set(run_dirs))
    print(f"wrote {report} from {n} run director{'y' if n == 1 else 'ies'}")
    return 0
