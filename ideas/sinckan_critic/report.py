"""Report for the KAN-critic sweeps: `python -m ideas.sinckan_critic.report <run or sweep dirs...> [--out DIR]`.

Arms are the critic's first layer. The primary question: does each arm differ from the parameter-matched MLP (the
fair control of a wider first layer) in AUC against env frames? Parameter counts and the fraction of normalised
observations outside each basis's useful range are columns of every table. Beyond core's report it draws what a KAN
is for: the learned first-layer functions of a few input dimensions, one figure per task (first_layer_<task>.png).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from core.analysis import ExtraColumn, ReportSpec, ScatterFigure, find_run_dirs, load_run, main

SPEC = ReportSpec(
    title="KAN first layers for SAC critics (SincKAN, pykan) against a parameter-matched MLP and Fourier features",
    group_keys=("first_layer",),
    reference={"first_layer": "linear_matched"},
    primary_metric="auc",
    question="Does each critic first layer learn faster or slower per env step than a plain MLP critic with the same "
             "parameter count as the Sinc critic (linear_matched), measured by AUC of evaluation return against env "
             "frames?",
    extra_columns=(
        ExtraColumn("critic_params", "critic params", summary="critic_params", digits=0),
        ExtraColumn("first_layer_params", "first-layer params", summary="first_layer_params", digits=0),
        ExtraColumn("outside_sinc", "obs outside sinc range", train="train/outside_sinc", reduce="mean", digits=3),
        ExtraColumn("outside_fourier", "obs outside Fourier range", train="train/outside_fourier", reduce="mean",
                    digits=3),
        ExtraColumn("outside_pykan", "obs outside pykan grid", train="train/outside_pykan", reduce="mean", digits=3),
    ),
    extra_figures=(ScatterFigure("auc_vs_params.png", x="critic_params", y="auc",
                                 title="AUC against critic parameters (dots = runs, crosses = means)"),),
)
FUNCTION_ARMS = ("linear", "linear_matched", "fourier", "sinc", "pykan")
CURVES_PER_PANEL = 8  # output units drawn per (arm, input): those whose learned function varies most


def learned_functions(run_dir: Path, z) -> tuple[list[int], list, object]:
    """Response of critic 1's first-layer outputs to one normalised observation dimension at a time (first, middle,
    last; the others held at 0, their running mean), minus the response at 0. Returns (dims, one (len(z), out) array
    per dim, the run's config). For every additive layer (all but linear_matched) a curve is exactly the learned
    univariate function of that input, up to a constant; for linear_matched it is the block's slice along it."""
    import torch
    from omegaconf import OmegaConf

    from core.checkpoint import load_checkpoint
    from ideas.sinckan_critic.agent import SincKANConfig, SincKANSAC

    state = load_checkpoint(run_dir)["agent"]
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SincKANConfig),
                                              OmegaConf.load(run_dir / ".hydra" / "config.yaml")))
    obs_dim = state["obs_norm"]["mean"].shape[0]
    last = max((k for k in state["actor"] if k.endswith(".weight")), key=lambda k: int(k.split(".")[1]))
    act_dim = state["actor"][last].shape[0] // 2  # the actor outputs mean and log-std per action dimension
    agent = SincKANSAC(cfg, obs_dim, act_dim, torch.device("cpu"))
    agent.load_state_dict(state)
    layer, in_dim = agent.critic.net[0], obs_dim + act_dim
    dims = sorted({0, obs_dim // 2, obs_dim - 1})
    grid = torch.as_tensor(z, dtype=torch.float32)
    curves = []
    with torch.no_grad():
        zero = layer(torch.zeros(2, 1, in_dim))[0]
        for d in dims:
            x = torch.zeros(len(grid), in_dim)
            x[:, d] = grid
            curves.append((layer(x.expand(2, *x.shape))[0] - zero).numpy())
    return dims, curves, cfg


def plot_learned_functions(run_dirs: list[Path], out_dir: Path) -> list[Path]:
    """One PNG per task: rows = observation dims, columns = arms, from the final checkpoint of each arm's lowest
    complete seed. Dashed lines mark each basis's useful range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ideas.sinckan_critic.layers import useful_range

    chosen: dict[str, dict[str, Path]] = {}
    for run in sorted((load_run(d, SPEC) for d in run_dirs), key=lambda r: (r.seed is None, r.seed or 0)):
        arm = run.config.get("first_layer")
        if run.state == "complete" and arm in FUNCTION_ARMS and (run.dir / "checkpoint.pt").exists():
            chosen.setdefault(run.task, {}).setdefault(arm, run.dir)
    written = []
    z = np.linspace(-4, 4, 161)
    for task, arms in sorted(chosen.items()):
        names = [a for a in FUNCTION_ARMS if a in arms]
        fig, axes = plt.subplots(3, len(names), figsize=(3.2 * len(names), 7.5), squeeze=False, sharex=True)
        for col, arm in enumerate(names):
            dims, curves, cfg = learned_functions(arms[arm], z)
            half = useful_range(arm, cfg.sinc_degree, cfg.sinc_init_h, cfg.sinc_tanh, cfg.pykan_grid, cfg.pykan_k)
            for row, (dim, curve) in enumerate(zip(dims, curves, strict=True)):
                ax = axes[row, col]
                top = np.argsort(np.ptp(curve, axis=0))[::-1][:CURVES_PER_PANEL]
                ax.axhline(0, color="0.85", lw=0.8)
                ax.plot(z, curve[:, top], lw=1)
                for edge in (-half, half) if np.isfinite(half) else ():
                    ax.axvline(edge, color="0.4", ls="--", lw=0.8)
                ax.set_title(f"{arm}, obs dim {dim}", fontsize=9)
                ax.set_ylabel("output change" if col == 0 else "")
                ax.set_xlabel("normalised input" if row == len(dims) - 1 else "")
            for row in range(len(dims), 3):
                axes[row, col].set_visible(False)
        fig.suptitle(f"{task}: learned first-layer functions of one input (others at their mean), critic 1, "
                     f"{CURVES_PER_PANEL} most varying outputs", fontsize=10)
        fig.tight_layout()
        path = out_dir / ("first_layer_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", task) + ".png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def report(argv: list[str]) -> int:
    """core's report, then the learned-function figures appended to report.md."""
    code = main(argv, SPEC, prog="python -m ideas.sinckan_critic.report")
    if code != 0:
        return code
    parser = argparse.ArgumentParser(add_help=False)  # the same arguments core's main has just validated
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--reference")
    args = parser.parse_args(argv)
    dirs = args.dirs
    out = args.out or (dirs[0] if len(dirs) == 1 else Path("report"))  # core's default, kept in step
    figures = plot_learned_functions([r for d in dirs for r in find_run_dirs(d)], out)
    if figures:
        lines = ["", "## Learned first-layer functions", "",
                 "Each panel: how critic 1's first-layer outputs change as one normalised observation dimension "
                 "moves while the others stay at their running mean (0), for the outputs that vary most; the "
                 "final checkpoint of each arm's lowest complete seed. For additive layers (linear, fourier, sinc, "
                 "pykan) these are the learned univariate functions themselves; dashed lines: the basis's useful "
                 "range.", ""]
        lines += [f"![{p.stem}]({p.name})" for p in figures]
        with open(out / "report.md", "a") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(report(sys.argv[1:]))
