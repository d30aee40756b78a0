"""The continual-learning report: Continual World's metrics per method with 90% CIs, per-task tables and the familiar
success-curve figure (one panel per task, its training window shaded), from run directories alone.

An idea's report.py builds a `ContinualReportSpec` and calls `main(argv, spec, prog)`. Runs are grouped by the
sequence they ran (config `task`: "CW10", "CW10@100k", ...) and the spec's group keys (e.g. `method`); one-task
sequences are the single-task reference runs forward transfer needs (matched by task and budget, and by the spec's
`reference` config values when it has them). Only complete runs enter the metrics; the others are listed.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.analysis.continual import (
    BOOTSTRAP_REPS,
    CONFIDENCE,
    MethodMetrics,
    SequenceRun,
    load_sequence_run,
    method_metrics,
)
from core.analysis.runs import find_run_dirs, natural_key

V3_NOTE = ("Meta-World v3 (39-dim observations, v3 rewards, MT1's 50 goals per task), rebuilt in PyTorch: not the "
           "paper's v1 benchmark, so these numbers are never comparable to Continual World's published ones.")


@dataclass(frozen=True)
class ContinualReportSpec:
    """What a continual study tells the report: how runs form methods and which one-task runs are references."""

    title: str  # first line of report.md
    group_keys: tuple[str, ...] = ("method",)  # config fields whose values name a method
    reference: Mapping[str, Any] | None = None  # config values a reference run must have (None: any one-task run)


def _label(run: SequenceRun, keys: tuple[str, ...]) -> str:
    values = [str(run.config.get(k, "-")) for k in keys]
    return "/".join(values) or "-"


def _is_reference(run: SequenceRun, spec: ContinualReportSpec) -> bool:
    wanted = spec.reference or {}
    return len(run.tasks) == 1 and all(str(run.config.get(k)) == str(v) for k, v in wanted.items())


def _ci(value: tuple[float, float, float]) -> str:
    point, lo, hi = value
    return "n/a" if not math.isfinite(point) else f"{point:.2f} [{lo:.2f}, {hi:.2f}]"


def _num(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.2f}"


def _table(headers: list[str], rows: list[list]) -> list[str]:
    return (["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""])


def figure_file(sequence: str) -> str:
    """File name of a sequence's success-curve figure."""
    return "success_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", sequence) + ".png"


def plot_success(sequence: str, groups: dict[str, list[SequenceRun]], references: list[SequenceRun],
                 path: Path) -> None:
    """One panel per task: each method's mean stochastic success over the whole sequence with a 90% bootstrap band,
    the task's own training window shaded, switches dotted, the single-task reference (shifted into the window)
    dashed."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter

    from core.analysis.stats import bootstrap_mean_band

    first = next(iter(groups.values()))[0]
    tasks, steps_per_task = first.tasks, first.steps_per_task
    cols = min(5, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig = Figure(figsize=(3.4 * cols + 1.5, 2.6 * rows + 0.8), dpi=100, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True).ravel()
    cmap = colormaps["tab10" if len(groups) <= 10 else "tab20"]
    for i, (ax, task) in enumerate(zip(axes, tasks, strict=False)):
        ax.axvspan(i * steps_per_task, (i + 1) * steps_per_task, color="0.85", lw=0)
        for k in range(1, len(tasks)):
            ax.axvline(k * steps_per_task, color="0.7", lw=0.5, ls=":")
        for c, (label, runs) in enumerate(groups.items()):
            n = min(len(r.steps) for r in runs)
            curves = np.stack([r.success[:n, i] for r in runs])
            mean, lo, hi = bootstrap_mean_band(curves, 1000, 1 - CONFIDENCE, np.random.default_rng(0))
            ax.plot(runs[0].steps[:n], mean, color=cmap(c % cmap.N), lw=1.4, label=f"{label} (n={len(runs)})")
            ax.fill_between(runs[0].steps[:n], lo, hi, color=cmap(c % cmap.N), alpha=0.2, lw=0)
        ref = [r for r in references if r.tasks == [task] and r.steps_per_task == steps_per_task]
        if ref:
            n = min(len(r.steps) for r in ref)
            ax.plot(ref[0].steps[:n] + i * steps_per_task, np.mean([r.success[:n, 0] for r in ref], axis=0),
                    color="black", lw=1, ls="--", label=f"single-task reference (n={len(ref)})" if i == 0 else None)
        ax.set_title(f"{i}: {task}", fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.grid(alpha=0.3)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel("success (stochastic)")
    handles = {lbl: h for ax in axes for h, lbl in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(list(handles.values()), list(handles), fontsize=8, loc="outside right upper")
    for ax in axes[max(0, len(tasks) - cols):len(tasks)]:
        ax.set_xlabel("env steps")
    fig.suptitle(f"{sequence}: success on each task across the sequence\n(shaded: the task's own training window; "
                 f"mean and {CONFIDENCE:.0%} bootstrap band over seeds)", fontsize=10)
    fig.savefig(path)


def write_report(run_dirs: list[Path], out: Path, spec: ContinualReportSpec) -> Path:
    """report.md, metrics.csv, per_task.csv and one figure per sequence in `out`; returns report.md's path."""
    runs = [r for r in (load_sequence_run(d) for d in run_dirs) if r is not None]
    if not runs:
        raise ValueError("no task-sequence runs (eval.csv rows per task, a config with steps_per_task) found")
    complete = [r for r in runs if r.complete]
    references = [r for r in complete if _is_reference(r, spec)]
    by_sequence: dict[str, dict[str, list[SequenceRun]]] = defaultdict(lambda: defaultdict(list))
    for r in complete:
        if len(r.tasks) > 1:
            by_sequence[r.name][_label(r, spec.group_keys)].append(r)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# {spec.title}", "", V3_NOTE, "",
             f"Metrics as Continual World defines them (core/analysis/continual.py): P = mean final success, F = mean "
             f"forgetting, FT = normalised forward transfer against single-task reference runs with the same budget; "
             f"[{CONFIDENCE:.0%} bootstrap CI over seeds, {BOOTSTRAP_REPS} resamples]. Success is the stochastic "
             f"policy's; final = mean of the last 5 evaluations.", ""]
    metric_rows, task_rows = [], []
    for sequence in sorted(by_sequence, key=natural_key):
        groups = dict(sorted(by_sequence[sequence].items(), key=lambda kv: natural_key(kv[0])))
        table = []
        results: list[MethodMetrics] = []
        for label, members in groups.items():
            m = method_metrics(label, members, references)
            results.append(m)
            table.append([label, m.runs, _ci(m.performance), _ci(m.forgetting), _ci(m.forward_transfer)])
            for metric in ("performance", "forgetting", "forward_transfer"):
                point, lo, hi = getattr(m, metric)
                metric_rows.append(dict(sequence=sequence, group=label, metric=metric, point=point, lo=lo, hi=hi,
                                        runs=m.runs))
        tasks = next(iter(groups.values()))[0].tasks
        lines += [f"## {sequence}", "", *_table(["method", "runs", "P", "F", "FT"], table)]
        missing = sorted({t for m in results for t, n in zip(tasks, m.reference_runs, strict=True) if not n})
        if missing:
            lines += [f"No complete single-task reference runs with this budget for: {', '.join(missing)} (FT "
                      f"leaves those tasks out).", ""]
        lines += [f"![success curves]({figure_file(sequence)})", "", "Per task (means over runs):", ""]
        per_task = []
        for m in results:
            for i, task in enumerate(tasks):
                row = [m.group, f"{i}: {task}", _num(m.final[i]), _num(m.forgetting_per_task[i]), _num(m.auc[i]),
                       f"{_num(m.reference_auc[i])} (n={m.reference_runs[i]})", _num(m.ft_per_task[i])]
                per_task.append(row)
                task_rows.append(dict(sequence=sequence, group=m.group, task_index=i, task=task, final=m.final[i],
                                      forgetting=m.forgetting_per_task[i], auc=m.auc[i],
                                      reference_auc=m.reference_auc[i], reference_runs=m.reference_runs[i],
                                      forward_transfer=m.ft_per_task[i]))
        lines += _table(["method", "task", "final", "forgetting", "AUC", "reference AUC", "FT"], per_task)
        plot_success(sequence, groups, references, out / figure_file(sequence))
    if not by_sequence:
        lines += ["No complete runs of a sequence of two or more tasks.", ""]
    lines += [f"Single-task reference runs used: {len(references)} complete."]
    skipped = [r for r in runs if not r.complete]
    if skipped:
        lines += ["", "Runs left out (not complete):", ""] + [
            f"- `{r.dir}`: status {r.status}, evaluated through step {int(r.steps[-1]) if r.steps.size else 0} of "
            f"{len(r.tasks) * r.steps_per_task}" for r in skipped]
    for name, rows, columns in (("metrics.csv", metric_rows, ["sequence", "group", "metric", "point", "lo", "hi",
                                                              "runs"]),
                                ("per_task.csv", task_rows, list(task_rows[0]) if task_rows else ["sequence"])):
        with open(out / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def main(argv: list[str] | None, spec: ContinualReportSpec, prog: str | None = None,
         write: Callable[[list[Path], Path, ContinualReportSpec], Path] = write_report) -> int:
    """CLI: `<prog> <run or sweep dirs...> [--out DIR]`; returns the exit code (2 on bad input, one line). `write`
    lets an idea append its own sections to the report (it calls write_report first)."""
    parser = argparse.ArgumentParser(prog=prog, description=f"{spec.title}: report.md, metrics.csv, per_task.csv "
                                     "and success-curve figures from task-sequence run directories alone.")
    parser.add_argument("dirs", nargs="+", type=Path, help="run or sweep directories (searched recursively)")
    parser.add_argument("--out", type=Path, help="output folder (default: the single given directory, else ./report)")
    args = parser.parse_args(argv)
    run_dirs: list[Path] = []
    for d in args.dirs:
        found = find_run_dirs(d) if d.is_dir() else []
        if not found:
            print(f"error: no run directories (folders holding .hydra/config.yaml) under {d}", file=sys.stderr)
            return 2
        run_dirs += found
    out = args.out or (args.dirs[0] if len(args.dirs) == 1 else Path("report"))
    try:
        report = write(run_dirs, out, spec)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {report} from {len(run_dirs)} run directories")
    return 0
