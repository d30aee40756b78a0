"""Figures for the run report, as PNGs: learning curves per task on three axes, speed, per-run scores, scatters.

Uses matplotlib's object API (no pyplot), so drawing never changes the global backend. The report imports this
module only when it has runs to plot, so the CLI's error paths never pay for importing matplotlib.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from core.analysis import stats
from core.analysis.runs import Run
from core.analysis.spec import ReportSpec, ScatterFigure

BOOTSTRAP_REPS = 2000
CURVE_AXES = (  # (Run attribute, panel title, x label, horizon key)
    ("frames", "per env step", "environment steps (frames; {repeat})", None),
    ("wall", "per second of wall-clock", "wall-clock seconds (evaluations included)", "auc_wall"),
    ("compute", "per unit of measured update cost", "updates x the arm's seconds per update", "auc_compute"),
)
SHORT = {"auc": "AUC (frames)", "final_return": "final return", "auc_wall": "AUC (wall-clock)",
         "auc_compute": "AUC (update cost)", "env_steps_per_s": "env steps/s", "updates_per_s": "updates/s",
         "s_per_update": "seconds per update", "wall_s": "wall-clock seconds"}


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def palette(names: list[str], cmap_name: str = "tab10") -> dict:
    """name -> colour from `cmap_name`, or from tab20 when there are more than 10 names."""
    cmap = colormaps[cmap_name if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _repeat_text(runs: list[Run]) -> str:
    repeats = sorted({r.action_repeat for r in runs if r.action_repeat is not None})
    if not repeats:
        return "action repeat unknown"
    return "action repeat " + "/".join(map(str, repeats))


def group_curves(members: list[Run], axis: str) -> tuple[np.ndarray, np.ndarray]:
    """(grid, curves (runs, points)) on one x axis, over the range every run covers.

    On frames the grid is the first run's evaluation points (runs of a group share them); on time axes, where every
    run has its own times, an even grid with as many points as the longest run has evaluations.
    """
    xs = [(getattr(r, axis), r.returns) for r in members]
    xs = [(x[np.isfinite(x)], y[np.isfinite(x)]) for x, y in xs if x.size and np.isfinite(x).any()]
    if not xs:
        return np.zeros(0), np.zeros((0, 0))
    lo, hi = max(x[0] for x, _ in xs), min(x[-1] for x, _ in xs)
    if axis == "frames":
        first = xs[0][0]
        grid = first[(first >= lo) & (first <= hi)]
        grid = first if grid.size == 0 else grid
    else:
        grid = np.linspace(lo, hi, max(len(x) for x, _ in xs)) if hi > lo else xs[0][0]
    return grid, np.stack([np.interp(grid, x, y) for x, y in xs])


def plot_curves(runs: list[Run], task: str, groups: list[str], colors: dict, legend_title: str,
                horizons: dict[str, float], path: Path) -> None:
    """Evaluation return against frames, wall-clock time and update cost for one task: mean and 95% bootstrap band."""
    task_runs = [r for r in runs if r.task == task]
    fig = _new_figure(17 if len(groups) <= 5 else 19, 5)
    axes = fig.subplots(1, len(CURVE_AXES), sharey=True)
    counts = []
    for ax, (axis, title, xlabel, horizon_key) in zip(axes, CURVE_AXES, strict=True):
        drawn = False
        for group in groups:
            members = sorted((r for r in task_runs if r.group == group), key=lambda r: (r.seed is None, r.seed or 0))
            grid, curves = group_curves(members, axis) if members else (np.zeros(0), None)
            if grid.size == 0:
                continue
            mean, lo, hi = stats.bootstrap_mean_band(curves, BOOTSTRAP_REPS, 0.05, np.random.default_rng(0))
            ax.plot(grid, mean, color=colors[group], lw=1.8, marker="o" if grid.size <= 25 else None, ms=3,
                    label=f"{group} (n={len(members)})")
            ax.fill_between(grid, lo, hi, color=colors[group], alpha=0.2, lw=0)
            drawn = True
            if axis == "frames":
                counts.append(len(members))
        horizon = horizons.get(horizon_key, math.nan) if horizon_key else math.nan
        if math.isfinite(horizon):
            ax.axvline(horizon, color="grey", ls="--", lw=1)
            ax.text(horizon, 0.02, " AUC window ends", transform=ax.get_xaxis_transform(), fontsize=7, color="grey")
        if not drawn:
            ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", va="center")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel.format(repeat=_repeat_text(task_runs)))
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("evaluation return")
    seeds = (f"{min(counts)} seeds" if counts and min(counts) == max(counts)
             else f"{min(counts)}-{max(counts)} seeds" if counts else "no runs")
    fig.suptitle(f"{task}: mean evaluation return per arm, 95% bootstrap band ({seeds} per arm)")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, title=legend_title, fontsize=8, title_fontsize=8, loc="outside right upper")
    fig.savefig(path)


def _bars(ax, runs: list[Run], tasks: list[str], groups: list[str], value, task_colors: dict) -> bool:
    width, jitter, drawn = 0.8 / len(tasks), np.random.default_rng(0), set()
    for (j, task), (i, group) in itertools.product(enumerate(tasks), enumerate(groups)):
        values = [v for r in runs if r.task == task and r.group == group for v in [value(r)] if math.isfinite(v)]
        if not values:
            continue
        x = i - 0.4 + width * (j + 0.5)
        ax.bar(x, np.mean(values), width * 0.9, color=task_colors[task], edgecolor="black", lw=0.5,
               label=None if task in drawn else task)
        ax.scatter(x + jitter.uniform(-0.15, 0.15, len(values)) * width, values, s=12, color="black", zorder=3)
        drawn.add(task)
    return bool(drawn)


def plot_speed(runs: list[Run], tasks: list[str], groups: list[str], legend_title: str, path: Path) -> None:
    """Env steps/s (top) and milliseconds per update (bottom) per arm: bars are means per task, dots are seeds."""
    fig = _new_figure(max(7.0, 0.9 * len(groups) * max(1, len(tasks) / 2) + 3), 7.5)
    axes = fig.subplots(2, 1, sharex=True)
    task_colors = palette(tasks, "Set2")
    panels = ((lambda r: r.speed.get("env_steps_per_s", math.nan), "env steps per second", "Throughput"),
              (lambda r: 1000 * r.speed.get("s_per_update", math.nan), "ms per update (training time)",
               "Measured cost per update"))
    for ax, (value, ylabel, name) in zip(axes, panels, strict=True):
        if _bars(ax, runs, tasks, groups, value, task_colors):
            ax.legend(title="task", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            ax.text(0.5, 0.5, "not recorded in summary.json or train.csv", transform=ax.transAxes, ha="center")
        ax.set_ylabel(ylabel)
        ax.set_title(name)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    axes[-1].set_xlabel(f"arm ({legend_title})")
    fig.suptitle(f"Speed per arm: bars = mean over seeds, dots = seeds ({len(runs)} complete runs)")
    fig.savefig(path)


def plot_scores(runs: list[Run], tasks: list[str], groups: list[str], colors: dict, path: Path) -> None:
    """Final return, AUC against frames and AUC against wall-clock per run: box plus seeds per arm, a row per task."""
    panels = ("final_return", "auc", "auc_wall")
    fig = _new_figure(max(11.0, 3 * (0.55 * len(groups) + 1.6)), 3.6 * len(tasks) + 0.6)
    axes = fig.subplots(len(tasks), len(panels), squeeze=False)
    jitter = np.random.default_rng(0)
    for row, task in enumerate(tasks):
        present = [g for g in groups if any(r.task == task and r.group == g for r in runs)]
        for col, metric in enumerate(panels):
            ax = axes[row][col]
            data = [[v for r in runs if r.task == task and r.group == g for v in [r.value(metric)] if math.isfinite(v)]
                    for g in present]
            ax.boxplot(data, positions=range(len(present)), widths=0.5, showfliers=False,
                       medianprops={"color": "black"})
            for i, (group, values) in enumerate(zip(present, data, strict=True)):
                ax.scatter(i + jitter.uniform(-0.12, 0.12, len(values)), values, s=20, color=colors[group],
                           edgecolor="black", lw=0.4, zorder=3)
            ax.set_xticks(range(len(present)), present, rotation=30, ha="right")
            ax.set_title(f"{task}: {SHORT[metric]}", fontsize=9)
            ax.set_ylabel(SHORT[metric], fontsize=8)
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Per-run scores by arm (box = quartiles, dots = seeds)")
    fig.savefig(path)


def plot_scatter(runs: list[Run], tasks: list[str], groups: list[str], colors: dict, figure: ScatterFigure,
                 spec: ReportSpec, path: Path) -> None:
    """An extra figure: every run at (x, y), one panel per task; crosses mark each arm's mean."""
    titles = SHORT | {c.name: c.title for c in spec.extra_columns}
    fig = _new_figure(5.5 * len(tasks) + 2.5, 4.5)
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        for group in groups:
            points = np.array([(r.value(figure.x), r.value(figure.y)) for r in runs
                               if r.task == task and r.group == group]).reshape(-1, 2)
            points = points[np.isfinite(points).all(axis=1)]
            if not points.size:
                continue
            ax.scatter(points[:, 0], points[:, 1], s=18, color=colors[group], alpha=0.6, edgecolor="none")
            ax.scatter(*points.mean(axis=0), s=120, marker="X", color=colors[group], edgecolor="black", lw=0.6,
                       label=group)
        ax.set_title(task)
        ax.set_xlabel(titles.get(figure.x, figure.x))
        ax.set_ylabel(titles.get(figure.y, figure.y))
        ax.grid(alpha=0.3)
    legend = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    if legend:
        fig.legend(list(legend.values()), list(legend), fontsize=8, loc="outside right upper")
    fig.suptitle(figure.title or f"{figure.y} against {figure.x} (dots = runs, crosses = arm means)")
    fig.savefig(path)
