"""Figures for the run report: learning curves per task, speed.png and final_auc.png, as PNGs.

Uses matplotlib's object API (no pyplot), so drawing never changes the global backend. core.report imports
this module only when it has runs to plot, so the CLI's error paths never pay for importing matplotlib.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from core import analysis
from core.report import ALPHA, BOOTSTRAP_REPS, Run


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def palette(names: list[str], cmap_name: str) -> dict:
    """name -> colour from `cmap_name`, or from tab20 when there are more than 10 names."""
    cmap = colormaps[cmap_name if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _frames_label(runs: list[Run]) -> str:
    repeats = sorted({r.action_repeat for r in runs if r.action_repeat is not None})
    text = (f"action repeat {repeats[0]}" if len(repeats) == 1
            else "action repeat " + "/".join(map(str, repeats)) if repeats else "action repeat unknown")
    return f"environment steps (frames; {text})"


def _seeds_text(counts: list[int]) -> str:
    lo, hi = min(counts), max(counts)
    return f"{lo} seed{'s' if lo != 1 else ''} per group" if lo == hi else f"{lo}-{hi} seeds per group"


def group_curves(members: list[Run]) -> tuple[np.ndarray, np.ndarray]:
    """(grid, curves (runs, points)): each run interpolated onto the first run's frames within the common range."""
    first = members[0].frames
    lo, hi = max(r.frames[0] for r in members), min(r.frames[-1] for r in members)
    grid = first[(first >= lo) & (first <= hi)]
    if grid.size == 0:  # the runs share no frame range; np.interp then holds each run's end values
        grid = first
    return grid, np.stack([np.interp(grid, r.frames, r.returns) for r in members])


def plot_curves(runs: list[Run], task: str, groups: list[str], colors: dict, legend_title: str, path: Path) -> None:
    """Evaluation return against env frames for one task: mean and 95% bootstrap band across seeds per group."""
    fig = _new_figure(8 if len(groups) <= 5 else 10, 5)
    ax = fig.add_subplot()
    counts, task_runs = [], [r for r in runs if r.task == task]
    for group in groups:
        members = sorted((r for r in task_runs if r.group == group), key=lambda r: (r.seed is None, r.seed or 0))
        if not members:
            continue
        grid, curves = group_curves(members)
        mean, lo, hi = analysis.bootstrap_mean_band(curves, BOOTSTRAP_REPS, ALPHA, np.random.default_rng(0))
        ax.plot(grid, mean, color=colors[group], lw=1.8, marker="o" if grid.size <= 25 else None, ms=3,
                label=f"{group} (n={len(members)})")
        ax.fill_between(grid, lo, hi, color=colors[group], alpha=0.2, lw=0)
        counts.append(len(members))
    ax.set_xlabel(_frames_label(task_runs))
    ax.set_ylabel("evaluation return")
    ax.set_title(f"{task}: mean evaluation return with 95% bootstrap CI ({_seeds_text(counts)})")
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.grid(alpha=0.3)
    outside = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)} if len(counts) > 5 else {"loc": "best"}
    ax.legend(title=legend_title, fontsize=8, title_fontsize=8, **outside)
    fig.savefig(path)


def plot_speed(runs: list[Run], tasks: list[str], groups: list[str], legend_title: str, path: Path) -> None:
    """Env steps/s (top) and NFE per action (bottom) per group: bars are means per task, dots are seeds."""
    fig = _new_figure(max(7.0, 0.9 * len(groups) * max(1, len(tasks) / 2) + 3), 7.5)
    axes = fig.subplots(2, 1, sharex=True)
    task_colors = palette(tasks, "Set2")
    width = 0.8 / len(tasks)
    jitter = np.random.default_rng(0)
    panels = (("env_steps_per_s", "env steps per second", "Throughput (wall clock)"),
              ("nfe", "network evaluations per action", "NFE per action"))
    for ax, (metric, ylabel, name) in zip(axes, panels, strict=True):
        drawn = set()
        for (j, task), (i, group) in itertools.product(enumerate(tasks), enumerate(groups)):
            values = [v for r in runs if r.task == task and r.group == group
                      for v in [getattr(r, metric)] if math.isfinite(v)]
            if not values:
                continue
            x = i - 0.4 + width * (j + 0.5)
            ax.bar(x, np.mean(values), width * 0.9, color=task_colors[task], edgecolor="black", lw=0.5,
                   label=None if task in drawn else task)
            ax.scatter(x + jitter.uniform(-0.15, 0.15, len(values)) * width, values, s=12, color="black", zorder=3)
            drawn.add(task)
        if not drawn:
            ax.text(0.5, 0.5, f"not recorded ({metric} missing from summary.json and train.csv)",
                    transform=ax.transAxes, ha="center", va="center")
        ax.set_ylabel(ylabel)
        ax.set_title(name)
        ax.grid(axis="y", alpha=0.3)
        if drawn:
            ax.legend(title="task", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1].set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    axes[-1].set_xlabel(f"group ({legend_title})")
    fig.suptitle(f"Speed per group: bars = mean over seeds, dots = seeds ({len(runs)} complete runs)")
    fig.savefig(path)


def plot_final_auc(runs: list[Run], tasks: list[str], groups: list[str], colors: dict, path: Path) -> None:
    """Final return (left) and AUC (right) per run, box plus seeds per group, one row per task."""
    fig = _new_figure(max(8.0, 2 * (0.55 * len(groups) + 1.6)), 3.6 * len(tasks) + 0.6)
    axes = fig.subplots(len(tasks), 2, squeeze=False)
    jitter = np.random.default_rng(0)
    panels = (("final_return", "final return", "final evaluation return"),
              ("auc", "AUC", "AUC (mean evaluation return)"))
    for row, task in enumerate(tasks):
        present = [g for g in groups if any(r.task == task and r.group == g for r in runs)]
        n = len([r for r in runs if r.task == task])
        for col, (metric, name, ylabel) in enumerate(panels):
            ax = axes[row][col]
            data = [[getattr(r, metric) for r in runs if r.task == task and r.group == g] for g in present]
            ax.boxplot(data, positions=range(len(present)), widths=0.5, showfliers=False,
                       medianprops={"color": "black"})
            for i, (group, values) in enumerate(zip(present, data, strict=True)):
                ax.scatter(i + jitter.uniform(-0.12, 0.12, len(values)), values, s=20, color=colors[group],
                           edgecolor="black", lw=0.4, zorder=3)
            ax.set_xticks(range(len(present)), present, rotation=30, ha="right")
            ax.set_title(f"{task}: {name} ({n} runs)")
            ax.set_ylabel(ylabel)
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Per-run final return and AUC by group (box = quartiles, dots = seeds)")
    fig.savefig(path)
