"""Report for the QSS-chunking sweeps: `python -m ideas.qss_chunking.report <run or sweep dirs...> [--out DIR]`.

Arms are agent/horizon/decoder. The primary question: does each arm differ from TD3 in AUC against env frames?
(`--reference d3g/1/mlp` asks it against D3G instead: does the horizon help a state-to-state critic?) Beyond core's
report it draws the idea's own question as diagnostics.png, one row per task: the inverse decoder's error per step
of the chunk, the forward model's error at s_{t+n} and the reach error ||s_{t+n} - proposed s_{t+n}|| against the
horizon n (d3g is the n = 1 point of the MLP-decoder line: qss at n = 1 with the MLP decoder is d3g), and the reach
error of each evaluation over training. Imports no torch.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from core.analysis import ExtraColumn, ReportSpec, ScatterFigure, find_run_dirs, load_run, main

SPEC = ReportSpec(
    title="State-to-state critics with action chunks (QSS-chunking) against TD3, n-step TD3, a chunked-action critic "
          "and D3G",
    group_keys=("agent", "horizon", "decoder"),
    reference={"agent": "td3", "horizon": 1, "decoder": "mlp"},
    primary_metric="auc",
    question="Does each arm learn faster or slower per env step than TD3, measured by AUC of evaluation return "
             "against env frames?",
    extra_columns=(
        ExtraColumn("reach_eval", "reach error (eval)", summary="reach_error_eval", train="train/reach_error_eval",
                    digits=3),
        ExtraColumn("reach_train", "reach error (train)", summary="reach_error", train="train/reach_error", digits=3),
        ExtraColumn("decoder_mse", "decoder MSE", summary="inverse_loss", train="train/inverse_loss", digits=4),
        ExtraColumn("forward_mse", "forward-model MSE", summary="forward_loss", train="train/forward_loss", digits=4),
    ),
    extra_figures=(ScatterFigure("auc_vs_reach.png", x="reach_eval", y="auc",
                                 title="AUC against the final evaluation's reach error (dots = runs, crosses = "
                                       "means)"),),
)
FAMILIES = {"d3g": "MLP decoder", "qss/mlp": "MLP decoder", "qss/gru": "GRU decoder"}  # lines against n


def family(config: dict) -> str | None:
    """The decoder line a run belongs to (d3g is the n = 1 point of the MLP one), None for agents without one."""
    agent = config.get("agent")
    return FAMILIES.get("d3g" if agent == "d3g" else f"{agent}/{config.get('decoder')}")


def arm_label(config: dict) -> str:
    """'d3g n=1', 'qss/gru n=3' ..."""
    agent = config.get("agent")
    return (f"qss/{config.get('decoder')}" if agent == "qss" else str(agent)) + f" n={config.get('horizon')}"


def reach_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(frames, evaluation-stream reach error) per evaluation (empty when the run has none). A train.csv row is
    written before its step's evaluation, so it holds the evaluation before it: each value goes to that evaluation's
    frame, and the final evaluation's value comes from summary.json."""
    def rows(name: str) -> list[dict]:
        if not (run_dir / name).is_file():
            return []
        with (run_dir / name).open(newline="") as f:
            return list(csv.DictReader(f))

    eval_frames = np.array([float(r["frame"]) for r in rows("eval.csv")])
    placed = {}
    for r in rows("train.csv"):
        value, frame = r.get("train/reach_error_eval"), float(r.get("frame") or "nan")
        if value not in (None, "") and (before := eval_frames[eval_frames < frame]).size:
            placed[float(before.max())] = float(value)
    summary = run_dir / "summary.json"
    final = json.loads(summary.read_text()).get("reach_error_eval") if summary.is_file() else None
    if final is not None and eval_frames.size:
        placed[float(eval_frames[-1])] = float(final)
    points = [(a, b) for a, b in placed.items() if math.isfinite(b)]
    return np.array([a for a, _ in points]), np.array([b for _, b in points])


def plot_diagnostics(run_dirs: list[Path], path: Path) -> bool:
    """diagnostics.png: decoder error per chunk step, forward-model and reach error against n, reach error over
    training; one row per task, from complete runs of d3g and qss. Returns False when there is nothing to draw."""
    runs = [r for r in (load_run(d, SPEC) for d in run_dirs) if r.state == "complete" and family(r.config)]
    if not runs:
        return False
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    tasks = sorted({r.task for r in runs})
    arms = sorted({arm_label(r.config) for r in runs})
    colors = {a: colormaps["tab10"](i % 10) for i, a in enumerate(arms)}
    family_colors = {"MLP decoder": "tab:blue", "GRU decoder": "tab:orange"}
    fig = Figure(figsize=(21, 4.2 * len(tasks)), dpi=100, layout="constrained")
    axes = fig.subplots(len(tasks), 4, squeeze=False)
    jitter = np.random.default_rng(0)
    for row, task in enumerate(tasks):
        mine = [r for r in runs if r.task == task]
        by_arm = defaultdict(list)
        for r in mine:
            by_arm[arm_label(r.config)].append(r)
        ax = axes[row][0]
        for arm, members in sorted(by_arm.items()):
            n = int(members[0].config["horizon"])
            steps = np.arange(1, n + 1)
            values = np.array([[_number(r.summary.get(f"decoder_error_step{i}")) for i in steps] for r in members])
            ax.plot(steps, np.nanmean(values, 0), marker="o", color=colors[arm], label=f"{arm} ({len(members)})")
            for v in values:
                ax.scatter(steps + jitter.uniform(-0.08, 0.08, n), v, s=10, color=colors[arm], alpha=0.5)
        ax.set_title(f"{task}: inverse decoder error per chunk step", fontsize=10)
        ax.set(xlabel="step i of the chunk (action a_{t+i-1})", ylabel="MSE per action dim (latest batch)")
        ax.set_xticks(range(1, max(int(r.config["horizon"]) for r in mine) + 1))
        ax.legend(fontsize=7, title="arm (seeds)", title_fontsize=7)
        for col, (key, title, ylabel) in enumerate(
                [("forward_loss", "forward-model error at s_{t+n} vs n", "MSE per state dim (latest batch)"),
                 ("reach_error_eval", "reach error vs n", "||s_{t+n} - proposed s_{t+n}||")], start=1):
            ax = axes[row][col]
            for name, color in family_colors.items():
                members = [r for r in mine if family(r.config) == name]
                for summary_key, style, stream in ((key, "-", "final evaluation"),
                                                   ("reach_error", "--", "last training chunks, noised")):
                    if summary_key == "reach_error" and col != 2:
                        continue
                    points = sorted((int(r.config["horizon"]), _number(r.summary.get(summary_key))) for r in members)
                    points = [(n, v) for n, v in points if math.isfinite(v)]
                    if not points:
                        continue
                    ns = sorted({n for n, _ in points})
                    means = [np.mean([v for m, v in points if m == n]) for n in ns]
                    label = f"{name}: {stream}" if col == 2 else name
                    ax.plot(ns, means, style, marker="o", color=color, label=label)
                    ax.scatter([n + jitter.uniform(-0.06, 0.06) for n, _ in points], [v for _, v in points], s=10,
                               color=color, alpha=0.5)
            ax.set_title(f"{task}: {title}", fontsize=10)
            ax.set(xlabel="horizon n", ylabel=ylabel)
            ax.set_xticks(sorted({int(r.config["horizon"]) for r in mine}))
            ax.legend(fontsize=7)
        ax = axes[row][3]
        drawn = False
        for arm, members in sorted(by_arm.items()):
            curves = [c for c in (reach_curve(r.dir) for r in members) if c[0].size]
            if curves:
                grid = curves[0][0]
                ax.plot(grid, np.mean([np.interp(grid, x, y) for x, y in curves], 0), marker="o", ms=3,
                        color=colors[arm], label=arm)
                drawn = True
        if drawn:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no train.csv row after an evaluation", transform=ax.transAxes, ha="center")
        ax.set_title(f"{task}: reach error of each evaluation over training", fontsize=10)
        ax.set(xlabel="environment steps (frames)", ylabel="||s_{t+n} - proposed s_{t+n}|| (no noise)")
        for ax in axes[row]:
            ax.grid(alpha=0.3)
    fig.suptitle("Inverse decoder, forward model and reachability of the proposals (lines: means over seeds; dots: "
                 "runs; d3g is the MLP decoder's n = 1 point)")
    fig.savefig(path)
    return True


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def report(argv: list[str]) -> int:
    """core's report, then diagnostics.png and its section appended to report.md."""
    code = main(argv, SPEC, prog="python -m ideas.qss_chunking.report")
    if code != 0:
        return code
    dirs = [Path(a) for a in argv if not a.startswith("-") and Path(a).is_dir()]
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else (dirs[0] if len(dirs) == 1 else Path("report"))
    if plot_diagnostics([r for d in dirs for r in find_run_dirs(d)], out / "diagnostics.png"):
        lines = ["", "## Inverse decoder, forward model and reach error against the horizon", "",
                 "![diagnostics](diagnostics.png)", "",
                 "Per run, from summary.json: the decoder's MSE on each step a_{t+i-1} of the chunk and the forward "
                 "model's MSE on s_{t+n} - s_t (it predicts the chunk's end only, so it has one value per n), both on "
                 "the latest training batch; the reach error ||s_{t+n} - proposed s_{t+n}|| over the chunks executed "
                 "in the final evaluation (no exploration noise) and, dashed, over the training chunks of the last "
                 "300 agent steps (with it). Chunks cut by an episode end are not measured. The last panel: the "
                 "reach error of each evaluation (train.csv `train/reach_error_eval`, drawn at the evaluation it "
                 "describes), mean over seeds.", ""]
        with open(out / "report.md", "a") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(report(sys.argv[1:]))
