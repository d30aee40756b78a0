"""Learning regressions: does each agent still learn? Each case runs the real entry point over seeds, then checks a
threshold on evaluation return and writes the curve (PNG), per-seed numbers (CSV) and a verdict (JSON + markdown).

    python -m benchmarks.learning                    # every case, 3 seeds, 2 jobs in parallel
    python -m benchmarks.learning sac-cartpole --seeds 0 1 2 --jobs 2

Runs live in benchmarks/results/runs/<case>/seed<k> (not committed) and resume if interrupted: re-running the
command only finishes what is missing. Thresholds count environment frames (frames = agent steps * action_repeat).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parents[1]


@dataclass(frozen=True)
class Case:
    module: str  # entry point
    overrides: tuple[str, ...]  # Hydra overrides
    threshold: float  # evaluation return to reach
    within_frames: int  # ... within this many env frames
    rule: str  # "mean": the mean curve over seeds must reach it; "each": every seed must
    note: str  # what deviates from the published setting, said beside the numbers


CASES = {
    "sac-cartpole": Case(
        "core.run",
        ("task=cartpole-swingup", "action_repeat=4", "steps=25000", "warmup_steps=1000", "eval_every=2500",
         "eval_episodes=5", "log_every=2500", "checkpoint_every=10000"),
        threshold=750, within_frames=200_000, rule="mean",
        note="SAC, width 256, action repeat 4; trained for 100k frames (25k agent steps and updates)"),
    "flowrl-cartpole": Case(
        "ideas.ode_solvers.run",
        ("task=cartpole-swingup", "action_repeat=4", "steps=37500", "warmup_steps=2500", "hidden=128",
         "eval_every=2500", "eval_episodes=5", "log_every=2500", "checkpoint_every=10000"),
        threshold=600, within_frames=150_000, rule="each",
        note="FlowRL defaults (midpoint, 1 step, linear path) but width 128 and action repeat 4 for the CPU run "
             "(150k frames = 37.5k agent steps and updates); warm-up 2.5k agent steps = 10k frames"),
}


def run_seed(name: str, case: Case, seed: int, threads: int) -> Path:
    """Run (or resume, or skip if complete) one seed of a case; returns its run directory."""
    run_dir = RESULTS / "runs" / name / f"seed{seed}"
    cmd = [sys.executable, "-m", case.module, *case.overrides, f"seed={seed}", f"torch_threads={threads}",
           "wandb.mode=disabled", "progress=false", f"hydra.run.dir={run_dir}"]
    log = RESULTS / "runs" / name / f"seed{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=True,
                       env=dict(os.environ, MUJOCO_GL="disable"))
    return run_dir


def read_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(frames, returns) of a run's eval.csv."""
    with open(run_dir / "eval.csv") as f:
        rows = list(csv.DictReader(f))
    return np.array([float(r["frame"]) for r in rows]), np.array([float(r["return"]) for r in rows])


def judge(name: str, case: Case, run_dirs: list[Path]) -> dict:
    """Apply the case's rule; write <name>.csv (per-seed curves), <name>.png and <name>.json."""
    curves = {int(d.name.removeprefix("seed")): read_curve(d) for d in run_dirs}
    frames = next(iter(curves.values()))[0]
    returns = np.stack([r for _, r in curves.values()])
    inside = frames <= case.within_frames
    best_each = returns[:, inside].max(1)
    mean_curve = returns.mean(0)
    best_mean = float(mean_curve[inside].max())
    passed = bool(best_mean >= case.threshold) if case.rule == "mean" else bool((best_each >= case.threshold).all())
    summaries = [json.loads((d / "summary.json").read_text()) for d in run_dirs]
    result = dict(case=name, passed=passed, rule=case.rule, threshold=case.threshold,
                  within_frames=case.within_frames, best_mean_return=best_mean,
                  best_return_per_seed={s: float(b) for s, b in zip(curves, best_each, strict=True)},
                  final_return_per_seed={s: float(r[-1]) for s, r in zip(curves, returns, strict=True)},
                  env_steps_per_s=[s.get("env_steps_per_s") for s in summaries],
                  command=f"python -m benchmarks.learning {name} --seeds {' '.join(map(str, curves))}",
                  run_overrides=" ".join(case.overrides), note=case.note)
    with open(RESULTS / f"learning_{name}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seed", "frame", "return"])
        for seed, (fr, ret) in curves.items():
            writer.writerows((seed, int(a), float(b)) for a, b in zip(fr, ret, strict=True))
    (RESULTS / f"learning_{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(name, case, curves, frames, mean_curve)
    return result


def plot(name: str, case: Case, curves: dict, frames: np.ndarray, mean_curve: np.ndarray) -> None:
    """Per-seed curves, their mean, and the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for seed, (fr, ret) in curves.items():
        ax.plot(fr, ret, alpha=0.45, lw=1, label=f"seed {seed}")
    ax.plot(frames, mean_curve, color="black", lw=2, label=f"mean of {len(curves)} seeds")
    ax.axhline(case.threshold, color="red", ls="--", lw=1, label=f"threshold {case.threshold:g}")
    ax.axvline(case.within_frames, color="gray", ls=":", lw=1, label=f"budget {case.within_frames:,} frames")
    ax.set_xlabel("environment frames (agent steps x action repeat)")
    ax.set_ylabel("evaluation return (mean of episodes)")
    ax.set_title(textwrap.fill(f"{name}: {case.note}", 110), fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / f"learning_{name}.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cases", nargs="*", help=f"cases to run (default all): {', '.join(CASES)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="seeds run in parallel, one torch thread each")
    args = parser.parse_args(argv)
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        print(f"error: unknown case {unknown[0]!r}; valid choices: {', '.join(CASES)}", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    verdicts = []
    for name in args.cases or list(CASES):
        case = CASES[name]
        with ThreadPoolExecutor(args.jobs) as pool:
            run_dirs = list(pool.map(lambda s, n=name, c=case: run_seed(n, c, s, 1), args.seeds))
        result = judge(name, case, run_dirs)
        verdicts.append(result)
        print(f"{name}: {'PASS' if result['passed'] else 'FAIL'} best mean {result['best_mean_return']:.1f}, "
              f"best per seed {result['best_return_per_seed']} (threshold {case.threshold:g} within "
              f"{case.within_frames:,} frames, rule {case.rule})")
    return 0 if all(v["passed"] for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
