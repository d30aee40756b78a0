"""Continual World on a CPU: does CW's SAC learn single tasks, and does the CW finding hold on a reduced sequence?

Two parts, one protocol (PROTOCOL; Meta-World v3, never tabled beside the paper's v1 numbers):
- `single`: CW's SAC (fine-tuning, one task) on faucet-close, window-close and handle-press-side, 3 seeds each. PASS
  when every task's mean final success (the last 5 evaluations, mean over seeds) reaches SINGLE_BAR. These runs are
  also the single-task references forward transfer is measured against (same budget per task).
- `forgetting`: the sequence easy3 (the same three tasks in that order) for fine-tuning, EWC and PackNet, 3 seeds
  each. PASS when fine-tuning forgets (the lower end of its 90% bootstrap CI of F is above 0) and EWC and PackNet
  forget much less (each one's mean F at most half of fine-tuning's). P, F and FT with CIs, curves and the report of
  ideas.learnable_dropout go to results/continual_easy3/.

    python -m benchmarks.continual                  # both parts (single first: forgetting's FT reads its runs)
    python -m benchmarks.continual single --jobs 2

Runs live in results/runs/continual/<part>/<arm>/seed<k> (not committed) and resume if interrupted: re-running the
command only finishes what is missing. Budgets are in the run names (easy3@25k, mw-faucet-close@25k), never "CW10".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from core.analysis.continual import CONFIDENCE, final_success, load_sequence_run, method_metrics
from core.continual import SEQUENCES
from ideas.learnable_dropout.report import write_study

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parents[1]
RUNS = RESULTS / "runs" / "continual"

STEPS_PER_TASK = 25_000
# CW's SAC, methods and coefficients, reduced for 2 CPU cores: width 128 (CW: 256), 25k steps per task (CW: 1M) of
# which 2.5k uniform warm-up (CW: 10k), PackNet retrains 2.5k updates after each prune (CW: 100k), evaluation every
# 2.5k steps (10 per task window; CW: 20k).
PROTOCOL = (f"steps_per_task={STEPS_PER_TASK}", "hidden=128", "warmup_steps=2500", "update_after=1000",
            "eval_every=2500", "packnet_retrain_steps=2500")
NOTE = ("CW's SAC at width 128 (CW: 256), 25k steps per task (CW: 1M), 2.5k warm-up steps per task (CW: 10k), PackNet "
        "retraining 2.5k updates (CW: 100k), evaluation every 2.5k steps with 10 stochastic episodes per task")
TASKS = SEQUENCES["easy3"]
SEEDS = (0, 1, 2)
METHODS = ("finetune", "ewc", "packnet")
SINGLE_BAR = 0.8  # mean final success per task; set before the first run (to be revisited with its numbers)
MUCH_LESS = 0.5  # EWC's and PackNet's mean F at most this share of fine-tuning's


def run(run_dir: Path, overrides: tuple[str, ...]) -> Path:
    """One run of ideas.learnable_dropout.run (resumed, or skipped when complete)."""
    cmd = [sys.executable, "-m", "ideas.learnable_dropout.run", *PROTOCOL, *overrides, "torch_threads=1",
           "wandb.mode=disabled", "progress=false", f"hydra.run.dir={run_dir}"]
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f"{run_dir.name}.log", "a") as log:
        subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True,
                       env=dict(os.environ, MUJOCO_GL="disable"))
    return run_dir


def single_jobs() -> list[tuple[Path, tuple[str, ...]]]:
    return [(RUNS / "single" / task / f"seed{seed}", (f"sequence={task}", "method=finetune", f"seed={seed}"))
            for task in TASKS for seed in SEEDS]


def forgetting_jobs() -> list[tuple[Path, tuple[str, ...]]]:
    return [(RUNS / "forgetting" / method / f"seed{seed}", ("sequence=easy3", f"method={method}", f"seed={seed}"))
            for method in METHODS for seed in SEEDS]


def judge_single() -> dict:
    """Each task's final success per seed and its mean against SINGLE_BAR; a figure of the success curves."""
    runs = {task: [load_sequence_run(RUNS / "single" / task / f"seed{s}") for s in SEEDS] for task in TASKS}
    finals = {task: [float(final_success(r.success)[0]) for r in rs] for task, rs in runs.items()}
    result = dict(part="single", passed=all(np.mean(f) >= SINGLE_BAR for f in finals.values()), bar=SINGLE_BAR,
                  final_success_per_seed=finals, mean_final_success={t: float(np.mean(f)) for t, f in finals.items()},
                  command="python -m benchmarks.continual single", overrides=" ".join(PROTOCOL), note=NOTE)
    plot_single(runs, result)
    return result


def plot_single(runs: dict, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 3.4), sharey=True)
    for ax, (task, members) in zip(axes, runs.items(), strict=True):
        for seed, r in zip(SEEDS, members, strict=True):
            ax.plot(r.steps / 1e3, r.success[:, 0], lw=1, alpha=0.6, label=f"seed {seed}")
        ax.plot(members[0].steps / 1e3, np.mean([r.success[:, 0] for r in members], axis=0), color="black", lw=2,
                label="mean")
        ax.axhline(SINGLE_BAR, color="red", ls="--", lw=1, label=f"bar {SINGLE_BAR}")
        ax.set_title(f"{task}: final {result['mean_final_success'][task]:.2f}", fontsize=9)
        ax.set_xlabel("steps (k)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("success rate (10 stochastic episodes)")
    axes[0].legend(fontsize=7)
    verdict = "PASS" if result["passed"] else "FAIL"
    fig.suptitle(textwrap.fill(f"single-task CW-SAC: {verdict}. {NOTE}", 160), fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "continual_single.png", dpi=120)
    plt.close(fig)


def judge_forgetting() -> dict:
    """P, F, FT with CIs per method (core's CW metrics, the single runs as references) and the report."""
    references = [load_sequence_run(d) for d, _ in single_jobs()]
    metrics = {}
    for method in METHODS:
        runs = [load_sequence_run(RUNS / "forgetting" / method / f"seed{s}") for s in SEEDS]
        m = method_metrics(method, runs, references)
        metrics[method] = dict(performance=m.performance, forgetting=m.forgetting, forward_transfer=m.forward_transfer,
                               forgetting_per_task=m.forgetting_per_task.tolist(), final=m.final.tolist())
    ft_forgets = metrics["finetune"]["forgetting"][1] > 0
    others_less = all(metrics[m]["forgetting"][0] <= MUCH_LESS * metrics["finetune"]["forgetting"][0]
                      for m in ("ewc", "packnet"))
    report = write_study([d for d, _ in forgetting_jobs() + single_jobs()], RESULTS / "continual_easy3")
    return dict(part="forgetting", passed=bool(ft_forgets and others_less), finetune_forgets=bool(ft_forgets),
                ewc_packnet_forget_much_less=bool(others_less), much_less=MUCH_LESS, confidence=CONFIDENCE,
                metrics=metrics, report=str(report.relative_to(RESULTS.parent)),
                command="python -m benchmarks.continual forgetting", overrides=" ".join(PROTOCOL), note=NOTE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("parts", nargs="*", help="single, forgetting (default: both)")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one torch thread each")
    args = parser.parse_args(argv)
    parts = args.parts or ["single", "forgetting"]
    unknown = [p for p in parts if p not in ("single", "forgetting")]
    if unknown:
        print(f"error: unknown part {unknown[0]!r}; valid choices: single, forgetting", file=sys.stderr)
        return 2
    jobs = single_jobs() + (forgetting_jobs() if "forgetting" in parts else [])  # FT reads the single runs
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda job: run(*job), jobs))
    verdicts = [judge_single()] + ([judge_forgetting()] if "forgetting" in parts else [])
    for v in verdicts:
        (RESULTS / f"continual_{v['part']}.json").write_text(json.dumps(v, indent=2) + "\n")
        detail = v["mean_final_success"] if v["part"] == "single" else {
            m: [round(x, 3) for x in v["metrics"][m]["forgetting"]] for m in METHODS}
        print(f"{v['part']}: {'PASS' if v['passed'] else 'FAIL'} {detail}")
    return 0 if all(v["passed"] for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
