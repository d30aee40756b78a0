"""Continual World's metrics (Wolczyk et al. 2021) from task-sequence run directories, with 90% bootstrap CIs.

A sequence run (core.continual) has eval.csv rows `step, task_index, success, ...`, one per task per evaluation;
N tasks of D steps each; task i's window is the evaluations at steps in (i*D, (i+1)*D]. With p_i(t) the stochastic
success rate on task i at evaluation t, exactly as CW's results code computes them:

- final_i = mean of p_i over the run's last 5 evaluations; average performance P = mean_i final_i;
- end_i = mean of p_i over the last 5 evaluations of task i's own window; forgetting F = mean_i (end_i - final_i)
  (the last task's term is 0);
- AUC_i = mean of p_i over the evaluations of task i's window (the mean of the values, as CW, not a trapezoid);
  AUC_i^ref = the same over a single-task reference run of task i with the same budget (a one-task sequence);
  forward transfer FT = mean_i (mean_s AUC_i - mean_r AUC_i^ref) / (1 - mean_r AUC_i^ref), means over the method's
  runs s and the reference runs r of task i (CW normalises after averaging over seeds, so FT has no per-run value).
  A task whose reference solved it from the start (mean AUC^ref = 1) has no FT term and is left out of the mean.

CIs: CW's bootstrap, 4000 resamples, 90% percentile intervals (midpoint quantiles). P and F: the mean over runs of
the per-run value, runs resampled. FT: the method's runs resampled (each run keeps all its tasks) and, independently,
each task's reference runs (CW pairs reference runs of different tasks by position; they are separate runs, so they
are resampled apart here, which also allows unequal counts per task).

Pure numpy and file reading; no torch, no plotting (core.analysis.cw_report draws and writes the report).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from core.analysis.runs import flatten

LAST_EVALUATIONS = 5  # "final" and "end of a task" are means over this many evaluations
BOOTSTRAP_REPS = 4000
CONFIDENCE = 0.9


@dataclass
class SequenceRun:
    """One task-sequence run directory as the metrics need it."""

    dir: Path
    config: dict  # flattened .hydra/config.yaml
    name: str  # the sequence and budget: config `task` ("CW10", "pair@300", "mw-hammer@1M")
    tasks: list[str]
    steps_per_task: int
    seed: int | None
    status: str
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (E,) evaluation steps, ascending
    success: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (E, N) stochastic success per task
    returns: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (E, N) stochastic return per task
    group: str = ""

    @property
    def complete(self) -> bool:
        """Ran its whole budget: summary status "complete" and every task evaluated at every evaluation through the
        sequence's last step (a diverged or killed run must not pass for a finished one: its "final" would be
        mid-run)."""
        return (self.status == "complete" and self.steps.size > 0
                and int(self.steps[-1]) == len(self.tasks) * self.steps_per_task
                and bool(np.isfinite(self.success).all()))


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def load_sequence_run(run_dir: Path) -> SequenceRun | None:
    """Read a sequence run directory; None when it is not one (no `steps_per_task` and `sequence` in its config)."""
    run_dir = Path(run_dir)
    try:
        config = flatten(yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text()) or {})
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    if "steps_per_task" not in config or "sequence" not in config:
        return None
    summary_path = run_dir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    except (OSError, ValueError):
        summary = {}
    eval_path = run_dir / "eval.csv"
    rows = list(csv.DictReader(eval_path.open(newline=""))) if eval_path.is_file() else []
    tasks: dict[int, str] = {}
    for row in rows:
        tasks.setdefault(int(_float(row["task_index"])), row["task"])
    seed = config.get("seed")
    run = SequenceRun(run_dir, config, str(config.get("task", "")), [tasks[i] for i in sorted(tasks)],
                      int(config["steps_per_task"]), seed if isinstance(seed, int) else None,
                      str(summary.get("status", "missing")))
    steps = sorted({int(_float(row["step"])) for row in rows})
    index = {s: k for k, s in enumerate(steps)}
    run.steps = np.array(steps, dtype=np.int64)
    run.success = np.full((len(steps), len(tasks)), np.nan)
    run.returns = np.full((len(steps), len(tasks)), np.nan)
    for row in rows:
        k, i = index[int(_float(row["step"]))], int(_float(row["task_index"]))
        run.success[k, i], run.returns[k, i] = _float(row["success"]), _float(row["return"])
    return run


# ---------------------------------------------------------------------------------------------- per-run values
def window(steps: np.ndarray, task_index: int, steps_per_task: int) -> np.ndarray:
    """Which evaluations lie in task `task_index`'s window, steps (i*D, (i+1)*D]."""
    return (steps > task_index * steps_per_task) & (steps <= (task_index + 1) * steps_per_task)


def final_success(success: np.ndarray) -> np.ndarray:
    """(N,) each task's success averaged over the last 5 evaluations of the run."""
    return success[-LAST_EVALUATIONS:].mean(axis=0)


def end_of_task_success(steps: np.ndarray, success: np.ndarray, steps_per_task: int) -> np.ndarray:
    """(N,) each task's success averaged over the last 5 evaluations of its own window."""
    return np.array([success[window(steps, i, steps_per_task), i][-LAST_EVALUATIONS:].mean()
                     for i in range(success.shape[1])])


def window_auc(steps: np.ndarray, success: np.ndarray, steps_per_task: int) -> np.ndarray:
    """(N,) each task's mean success over the evaluations of its own window."""
    return np.array([success[window(steps, i, steps_per_task), i].mean() for i in range(success.shape[1])])


def average_performance(success: np.ndarray) -> float:
    """P: the mean over tasks of the final success."""
    return float(final_success(success).mean())


def forgetting(steps: np.ndarray, success: np.ndarray, steps_per_task: int) -> float:
    """F: the mean over tasks of (success at the end of its own window - final success)."""
    return float((end_of_task_success(steps, success, steps_per_task) - final_success(success)).mean())


def forward_transfer_per_task(auc: np.ndarray, reference_auc: list[np.ndarray]) -> np.ndarray:
    """(N,) (mean_s AUC_i - mean_r AUC_i^ref) / (1 - mean_r AUC_i^ref); auc is (runs, N), reference_auc[i] holds
    task i's reference runs' AUCs. nan where the reference mean is 1 (nothing to transfer) or missing."""
    ref = np.array([r.mean() if len(r) else np.nan for r in reference_auc])
    with np.errstate(divide="ignore", invalid="ignore"):
        ft = (auc.mean(axis=0) - ref) / (1.0 - ref)
    return np.where(np.isfinite(ft), ft, np.nan)


def forward_transfer(auc: np.ndarray, reference_auc: list[np.ndarray]) -> float:
    """FT: forward_transfer_per_task averaged over the tasks that have a term (nan if none)."""
    ft = forward_transfer_per_task(auc, reference_auc)
    return float(np.nanmean(ft)) if np.isfinite(ft).any() else math.nan


# ---------------------------------------------------------------------------------------------- bootstrap CIs
def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(samples[np.isfinite(samples)], [tail, 1.0 - tail], method="midpoint")
    return float(lo), float(hi)


def mean_ci(values: np.ndarray, reps: int = BOOTSTRAP_REPS, confidence: float = CONFIDENCE,
            seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean over runs and its bootstrap percentile interval (runs resampled); all nan when a value
    is missing (an interval from the resamples that happened to miss it would look finite and be wrong)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0 or not np.isfinite(values).all():
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    boot = values[rng.integers(0, values.size, (reps, values.size))].mean(axis=1)
    return (float(values.mean()), *_interval(boot, confidence))


def forward_transfer_ci(auc: np.ndarray, reference_auc: list[np.ndarray], reps: int = BOOTSTRAP_REPS,
                        confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float, float]:
    """(FT, lo, hi): the method's runs resampled (whole rows), each task's reference runs resampled on their own."""
    point = forward_transfer(auc, reference_auc)
    if not math.isfinite(point):
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    runs = auc[rng.integers(0, len(auc), (reps, len(auc)))].mean(axis=1)  # (reps, N)
    refs = np.stack([r[rng.integers(0, len(r), (reps, len(r)))].mean(axis=1) if len(r) else np.full(reps, np.nan)
                     for r in reference_auc], axis=1)  # (reps, N)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_task = (runs - refs) / (1.0 - refs)
    per_task = np.where(np.isfinite(per_task), per_task, np.nan)
    boot = np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan for row in per_task])
    return (point, *_interval(boot, confidence))


# ---------------------------------------------------------------------------------------------- a method's table row
@dataclass
class MethodMetrics:
    """One group of runs of one sequence: the three metrics with their CIs and the per-task values behind them."""

    group: str
    runs: int
    performance: tuple[float, float, float]
    forgetting: tuple[float, float, float]
    forward_transfer: tuple[float, float, float]
    final: np.ndarray  # (N,) mean over runs of final_i
    forgetting_per_task: np.ndarray  # (N,) mean over runs of end_i - final_i
    auc: np.ndarray  # (N,) mean over runs of AUC_i
    reference_auc: np.ndarray  # (N,) mean over reference runs (nan: none)
    reference_runs: list[int]  # (N,) how many reference runs each task has
    ft_per_task: np.ndarray  # (N,)


def reference_aucs(tasks: list[str], steps_per_task: int, references: list[SequenceRun]) -> list[np.ndarray]:
    """Task i -> the AUCs of the complete one-task runs of tasks[i] with the same budget (a task repeated in a
    sequence, CW20's second half, uses the same references)."""
    out = []
    for task in tasks:
        runs = [r for r in references if r.complete and r.tasks == [task] and r.steps_per_task == steps_per_task]
        out.append(np.array([window_auc(r.steps, r.success, steps_per_task)[0] for r in runs]))
    return out


def method_metrics(group: str, runs: list[SequenceRun], references: list[SequenceRun]) -> MethodMetrics:
    """The metrics of one group's complete runs of one sequence (all with the same tasks, budget and evaluation
    steps); a run that is not complete or does not line up raises ValueError naming it."""
    steps_per_task, tasks = runs[0].steps_per_task, runs[0].tasks
    for r in runs:
        if not r.complete:
            last = int(r.steps[-1]) if r.steps.size else 0
            raise ValueError(f"{group}: run {r.dir} is not complete (status {r.status}, evaluated through step {last} "
                             f"of {len(r.tasks) * r.steps_per_task}); finish it or leave it out")
        if (r.tasks, r.steps_per_task) != (tasks, steps_per_task) or not np.array_equal(r.steps, runs[0].steps):
            raise ValueError(f"{group}: run {r.dir} differs from {runs[0].dir} in its tasks, budget or evaluation "
                             f"steps; its metrics cannot be averaged with them")
    perf = np.array([average_performance(r.success) for r in runs])
    forget = np.array([end_of_task_success(r.steps, r.success, steps_per_task) - final_success(r.success)
                       for r in runs])
    auc = np.stack([window_auc(r.steps, r.success, steps_per_task) for r in runs])
    refs = reference_aucs(tasks, steps_per_task, references)
    return MethodMetrics(group, len(runs), mean_ci(perf), mean_ci(forget.mean(axis=1)), forward_transfer_ci(auc, refs),
                         np.mean([final_success(r.success) for r in runs], axis=0), forget.mean(axis=0),
                         auc.mean(axis=0), np.array([r.mean() if len(r) else np.nan for r in refs]),
                         [len(r) for r in refs], forward_transfer_per_task(auc, refs))
