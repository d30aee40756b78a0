"""Continual World on a CPU: does CW's SAC learn single tasks, does the CW finding hold on a reduced sequence, and
how does the learnable-dropout proposal compare there?

Three parts, one protocol (PROTOCOL; Meta-World v3, never tabled beside the paper's v1 numbers):
- `single`: CW's SAC (fine-tuning, one task) on faucet-close, window-close and handle-press-side, 3 seeds each. PASS
  when every task's mean final success (the last 5 evaluations, mean over seeds) reaches SINGLE_BAR. These runs are
  also the single-task references forward transfer is measured against (same budget per task).
- `forgetting`: the sequence easy3 (the same three tasks in that order) for fine-tuning, EWC and PackNet, 3 seeds
  each. PASS when fine-tuning forgets (the lower end of its 90% bootstrap CI of F is above 0) and EWC and PackNet
  forget much less (each one's mean F at most half of fine-tuning's). P, F and FT with CIs, curves and the report of
  ideas.learnable_dropout go to results/continual_easy3/.
- `dropout` (ideas/learnable_dropout): the researcher's full arm (learned per-task rates from the usage prior, GPM,
  replay) beside the forgetting part's baselines (fine-tuning, EWC, PackNet), GPM, GPM + replay (the full arm
  without dropout) and fixed heterogeneous rates on GPM + replay (Abbasi et al.'s exp(-alpha a / max a) rule, usage
  as mean |activation|: the full arm with fixed rates; their own pairing, heterogeneous dropout on GPM without
  replay, is arm heterogeneous_gpm and not run here), on easy3, 3 seeds each. The last three differ only in the
  dropout, so a difference among them is the dropout's and not replay's. Measured, no bar: P, F and FT with CIs,
  the tests against the best baseline and of the learned rates against the fixed ones and none, curves and the
  rate figure go to results/continual_dropout/.

    python -m benchmarks.continual                  # all parts (single first: FT reads its runs)
    python -m benchmarks.continual single --jobs 2

Runs live in results/runs/continual/<part>/<arm>/seed<k> and resume if interrupted: re-running the command only
finishes what is missing. Their records (summary.json, eval.csv, train.csv, the config, the dropout rates) are
committed, so a clean clone skips finished runs and judges again; checkpoints and logs are not (.gitignore).
Budgets are in the run names (easy3@50k, mw-faucet-close@50k), never "CW10".
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

from core.analysis.continual import CONFIDENCE, SequenceRun, final_success, load_sequence_run, method_metrics
from core.continual import SEQUENCES
from ideas.learnable_dropout.report import write_study

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parents[1]
RUNS = RESULTS / "runs" / "continual"

STEPS_PER_TASK = 50_000
# CW's SAC, methods and coefficients, reduced for 2 CPU cores: width 128 (CW: 256), 50k steps per task (CW: 1M) of
# which 2.5k uniform warm-up (CW: 10k), PackNet retrains 2.5k updates after each prune (CW: 100k), evaluation every
# 2.5k steps (20 per task window, so "final" is the last quarter of it; CW: 20k). At 25k steps per task
# single-task fine-tuning reached only 0.26 and 0.66 final success on faucet-close (2 seeds; the task was solved
# near 17.5k steps, inside the final evaluations), hence 50k.
PROTOCOL = (f"steps_per_task={STEPS_PER_TASK}", "hidden=128", "warmup_steps=2500", "update_after=1000",
            "eval_every=2500", "packnet_retrain_steps=2500")
NOTE = ("CW's SAC at width 128 (CW: 256), 50k steps per task (CW: 1M), 2.5k warm-up steps per task (CW: 10k), PackNet "
        "retraining 2.5k updates (CW: 100k), evaluation every 2.5k steps with 10 stochastic episodes per task")
TASKS = SEQUENCES["easy3"]
SEEDS = (0, 1, 2)
METHODS = ("finetune", "ewc", "packnet")
# ideas/learnable_dropout/conf/arm; the last three differ only in the dropout
DROPOUT_ARMS = ("gpm", "gpm_replay", "heterogeneous_gpm_replay", "learned_prior_gpm_replay")
SINGLE_BAR = 0.8  # mean final success per task; set before the first run, kept after it (0.93 / 1.00 / 0.86)
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
            for seed in SEEDS for task in TASKS]  # seed-major: every task's first seed reports early


def forgetting_jobs() -> list[tuple[Path, tuple[str, ...]]]:
    return [(RUNS / "forgetting" / method / f"seed{seed}", ("sequence=easy3", f"method={method}", f"seed={seed}"))
            for seed in SEEDS for method in METHODS]


def dropout_jobs() -> list[tuple[Path, tuple[str, ...]]]:
    return [(RUNS / "dropout" / arm / f"seed{seed}", ("sequence=easy3", f"+arm={arm}", f"seed={seed}"))
            for seed in SEEDS for arm in DROPOUT_ARMS]


def finished(run_dir: Path) -> SequenceRun:
    """A run that went through its whole budget; a diverged or unfinished one stops the judgement, naming it."""
    run = load_sequence_run(run_dir)
    if run is None or not run.complete:
        raise SystemExit(f"error: {run_dir} did not finish its budget (status {run.status if run else 'missing'}; "
                         f"see {run_dir}.log); re-run the command to resume it")
    return run


def judge_single() -> dict:
    """Each task's final success per seed and its mean against SINGLE_BAR; a figure of the success curves."""
    runs = {task: [finished(RUNS / "single" / task / f"seed{s}") for s in SEEDS] for task in TASKS}
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


def metrics(arms: dict[str, list[Path]]) -> dict:
    """P, F, FT (mean, CI low, CI high) per arm from core's CW metrics, the single runs as FT's references."""
    references = [finished(d) for d, _ in single_jobs()]
    out = {}
    for arm, dirs in arms.items():
        m = method_metrics(arm, [finished(d) for d in dirs], references)
        out[arm] = dict(performance=m.performance, forgetting=m.forgetting, forward_transfer=m.forward_transfer,
                        forgetting_per_task=m.forgetting_per_task.tolist(), final=m.final.tolist())
    return out


def baseline_arms() -> dict[str, list[Path]]:
    """The forgetting part's runs per CW method."""
    return {m: [d for d, o in forgetting_jobs() if f"method={m}" in o] for m in METHODS}


def judge_forgetting() -> dict:
    """P, F, FT with CIs per method and the report."""
    found = metrics(baseline_arms())
    ft_forgets = found["finetune"]["forgetting"][1] > 0
    others_less = all(found[m]["forgetting"][0] <= MUCH_LESS * found["finetune"]["forgetting"][0]
                      for m in ("ewc", "packnet"))
    report = write_study([d for d, _ in forgetting_jobs() + single_jobs()], RESULTS / "continual_easy3")
    with open(report, "a") as f:
        f.write(f"\nProtocol (benchmarks/continual.py, easy3 at {STEPS_PER_TASK // 1000}k steps per task): {NOTE}.\n")
    return dict(part="forgetting", passed=bool(ft_forgets and others_less), finetune_forgets=bool(ft_forgets),
                ewc_packnet_forget_much_less=bool(others_less), much_less=MUCH_LESS, confidence=CONFIDENCE,
                metrics=found, report=str(report.relative_to(RESULTS.parent)),
                command="python -m benchmarks.continual forgetting", overrides=" ".join(PROTOCOL), note=NOTE)


def judge_dropout() -> dict:
    """The full arm beside fine-tuning, EWC, PackNet, GPM, GPM + replay and heterogeneous dropout on GPM + replay:
    measured (passed is None), with the study's report (tests against the best baseline and of learned against fixed
    rates, rate figures)."""
    arms = baseline_arms() | {arm: [d for d, o in dropout_jobs() if f"+arm={arm}" in o] for arm in DROPOUT_ARMS}
    found = metrics(arms)  # first: an unfinished run stops the judgement before any report is written
    report = write_study([d for dirs in arms.values() for d in dirs] + [d for d, _ in single_jobs()],
                         RESULTS / "continual_dropout")
    with open(report, "a") as f:
        f.write(f"\nProtocol (benchmarks/continual.py, easy3 at {STEPS_PER_TASK // 1000}k steps per task): {NOTE}.\n")
    return dict(part="dropout", passed=None, confidence=CONFIDENCE, metrics=found,
                report=str(report.relative_to(RESULTS.parent)), command="python -m benchmarks.continual dropout",
                overrides=" ".join(PROTOCOL), note=NOTE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("parts", nargs="*", help="single, forgetting, dropout (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one torch thread each")
    args = parser.parse_args(argv)
    parts = args.parts or list(PARTS)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        print(f"error: unknown part {unknown[0]!r}; valid choices: {', '.join(PARTS)}", file=sys.stderr)
        return 2
    jobs = single_jobs()  # every part needs them (FT's references)
    jobs += forgetting_jobs() if {"forgetting", "dropout"} & set(parts) else []  # dropout: its baselines
    jobs += dropout_jobs() if "dropout" in parts else []
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda job: run(*job), jobs))
    verdicts = [PARTS[p]() for p in PARTS if p in parts or p == "single"]
    for v in verdicts:
        (RESULTS / f"continual_{v['part']}.json").write_text(json.dumps(v, indent=2) + "\n")
        detail = v["mean_final_success"] if v["part"] == "single" else {
            arm: {k: round(m[k][0], 3) for k in ("performance", "forgetting", "forward_transfer")}
            for arm, m in v["metrics"].items()}
        print(f"{v['part']}: {VERDICT[v['passed']]} {detail}")
    return 0 if all(v["passed"] is not False for v in verdicts) else 1


VERDICT = {True: "PASS", False: "FAIL", None: "measured"}
PARTS = {"single": judge_single, "forgetting": judge_forgetting, "dropout": judge_dropout}


if __name__ == "__main__":
    sys.exit(main())
