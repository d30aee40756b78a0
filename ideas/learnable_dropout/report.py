"""Report for the continual-learning study: `python -m ideas.learnable_dropout.report <run or sweep dirs...> [--out]`.

An arm is labelled method/dropout/dropout_scope (`gpm+replay/learned_prior/per_task`; the CW baselines are
`<method>/none/per_task`). One-task sequences of fine-tuning without dropout are the single-task references forward
transfer is measured against (pass their sweep directory too). Writes core's continual report (report.md: P, F, FT
with 90% bootstrap CIs per arm and sequence, per-task tables and success curves; metrics.csv, per_task.csv) and adds:

- every arm against the best CW baseline of each metric (highest P, lowest F, highest FT among finetune, l2, ewc,
  packnet, replay, gpm without dropout): the difference of means with its 90% bootstrap CI (both arms' runs
  resampled) and a two-sided exact Mann-Whitney test, Holm-corrected over the arms of one sequence and metric, with
  a line wherever no outcome could reach p < 0.05 and, below FEW_RUNS runs per arm, the intervals' real coverage. FT
  has no per-run value in CW's definition (it normalises after averaging over seeds); the test uses each run's
  (AUC_i - ref_i) / (1 - ref_i) against the mean reference, whose mean over runs is CW's FT.
- each arm with learned rates (concrete, learned_prior) against the same method with fixed heterogeneous rates and
  without dropout, the same way: the idea's own question.
- per sequence and dropout arm, rates_<sequence>_<arm>.png from each run's dropout_rates.npz: the actor's drop rates
  after each task, per layer (their distribution over units, seeds pooled), and the overlap of the units each task
  keeps: Jaccard of the quarter of units with the lowest rates, between every two tasks (mean over seeds; random
  quarters overlap by 1/7); and how far learning moved the rates within each task (mean |end - start|, the start
  being the rate's initialisation). Dropout acts in updates only (ideas.learnable_dropout.dropout): a rate says how a
  task was trained through a unit, not how the policy acts.
- per sequence and GPM arm, the size of each run's bases per actor trunk layer (summary.json).
"""

from __future__ import annotations

import json
import math
import re
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from core.analysis import cw_report
from core.analysis.continual import (
    BOOTSTRAP_REPS,
    CONFIDENCE,
    LAST_EVALUATIONS,
    SequenceRun,
    average_performance,
    end_of_task_success,
    final_success,
    load_sequence_run,
    reference_aucs,
    window_auc,
)
from core.analysis.cw_report import ContinualReportSpec, write_report
from core.analysis.runs import natural_key
from core.analysis.stats import attainable_holm, holm, mann_whitney, seeds_needed

GROUP_KEYS = ("method", "dropout", "dropout_scope")
REFERENCE = {"method": "finetune", "dropout": "none"}
SPEC = ContinualReportSpec(
    title="Learnable dropout for continual RL on Continual World (Meta-World v3): every arm beside CW's baselines",
    group_keys=GROUP_KEYS,
    reference=REFERENCE,
)
CW_BASELINES = ("finetune", "l2", "ewc", "packnet", "replay", "gpm")
LEARNED = ("concrete", "learned_prior")  # dropout kinds whose rates are learned ...
CONTROLS = ("heterogeneous", "none")  # ... and what they are tested against: fixed usage rates, no dropout
RATES_FILE = "dropout_rates.npz"  # written by ideas.learnable_dropout.agent (not imported: a report needs no torch)
FEW_RUNS = 10  # below this many runs per arm the report says its bootstrap intervals undercover
KEPT_FRACTION = 0.25  # a task "keeps" the quarter of units with its lowest drop rates
CHANCE_JACCARD = KEPT_FRACTION / (2 - KEPT_FRACTION)  # expected Jaccard of two random quarters: 1/7


def label(run: SequenceRun) -> str:
    """The arm: method/dropout/dropout_scope."""
    return "/".join(str(run.config.get(k, "-")) for k in GROUP_KEYS)


def is_baseline(arm: str) -> bool:
    """One of CW's six baselines without dropout."""
    method, dropout, _ = arm.split("/")
    return method in CW_BASELINES and dropout == "none"


def file_part(text: str) -> str:
    """text made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


# ---------------------------------------------------------------------------------------------- against baselines
def per_run_metrics(runs: list[SequenceRun], references: list[SequenceRun]) -> dict[str, np.ndarray]:
    """Each run's P, F, and FT against the mean reference AUC of each task (nan where a task has no term)."""
    steps_per_task, tasks = runs[0].steps_per_task, runs[0].tasks
    ref = np.array([r.mean() if len(r) else np.nan for r in reference_aucs(tasks, steps_per_task, references)])
    perf = np.array([average_performance(r.success) for r in runs])
    forget = np.array([(end_of_task_success(r.steps, r.success, steps_per_task) - final_success(r.success)).mean()
                       for r in runs])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (np.stack([window_auc(r.steps, r.success, steps_per_task) for r in runs]) - ref) / (1 - ref)
    terms = np.where(np.isfinite(terms), terms, np.nan)
    ft = np.array([np.nanmean(t) if np.isfinite(t).any() else np.nan for t in terms])
    return {"P": perf, "F": forget, "FT": ft}


def difference_ci(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """mean(a) - mean(b) and its bootstrap percentile interval (each sample resampled on its own)."""
    rng = np.random.default_rng(seed)
    boot = (a[rng.integers(0, len(a), (BOOTSTRAP_REPS, len(a)))].mean(1)
            - b[rng.integers(0, len(b), (BOOTSTRAP_REPS, len(b)))].mean(1))
    tail = (1 - CONFIDENCE) / 2
    lo, hi = np.quantile(boot, [tail, 1 - tail], method="midpoint")
    return float(a.mean() - b.mean()), float(lo), float(hi)


def difference_coverage(n: int, m: int, trials: int = 400) -> float:
    """How often difference_ci covers the true difference of two normal samples of n and m runs: the nominal
    CONFIDENCE needs many runs (a percentile interval never leaves the range the resampled means can take)."""
    rng = np.random.default_rng(1)
    cis = [difference_ci(rng.normal(size=n), rng.normal(size=m), seed=t) for t in range(trials)]
    return float(np.mean([lo <= 0 <= hi for _, lo, hi in cis]))


def comparison_table(pairs: list[tuple[str, str]], usable: dict[str, np.ndarray], alpha: float = 0.05) -> list[str]:
    """Markdown table of one Holm family: per (arm, against) the difference of means with its bootstrap CI, the exact
    two-sided Mann-Whitney p, Holm's p and the smallest Holm p these run counts allow; then, when no row can reach
    alpha, a line that says so."""
    tests = [mann_whitney(usable[arm], usable[ref]) for arm, ref in pairs]
    adjusted = holm(np.array([t.p for t in tests]))
    floors = attainable_holm([(len(usable[arm]), len(usable[ref])) for arm, ref in pairs],
                             observed=[t.p for t in tests])
    rows = []
    for (arm, ref), test, p_holm, floor in zip(pairs, tests, adjusted, floors, strict=True):
        diff, lo, hi = difference_ci(usable[arm], usable[ref])
        rows.append(f"| {arm} | {ref} | {len(usable[arm])} / {len(usable[ref])} | {diff:+.2f} [{lo:+.2f}, {hi:+.2f}] "
                    f"| {test.p:.3f} | {p_holm:.3f} | {floor:.3f} |")
    lines = [f"| arm | against | runs | difference [{CONFIDENCE:.0%} CI] | p (Mann-Whitney, exact) | p (Holm) | "
             "smallest attainable p (Holm) |", "|---|---|---|---|---|---|---|", *rows, ""]
    if floors.min() >= alpha:
        need = seeds_needed(len(pairs), alpha)
        lines += [f"No row can reach p < {alpha:g} with these run counts (smallest attainable Holm p "
                  f"{floors.min():.2f}): this test cannot show a difference here, and p >= {alpha:g} is not evidence "
                  f"of none" + (f"; {need} runs per arm would make it possible." if need else "."), ""]
    return lines


def baseline_tests(groups: dict[str, list[SequenceRun]], references: list[SequenceRun]) -> list[str]:
    """Markdown: each arm against the best CW baseline of each metric."""
    values = {arm: per_run_metrics(runs, references) for arm, runs in groups.items()}
    baselines = [arm for arm in values if is_baseline(arm)]
    if not baselines:
        return ["No CW baseline (finetune, l2, ewc, packnet, replay, gpm without dropout) among these runs: no tests.",
                ""]
    lines = []
    for metric, better in (("P", max), ("F", min), ("FT", max)):
        usable = {arm: v[metric][np.isfinite(v[metric])] for arm, v in values.items()}
        candidates = [arm for arm in baselines if len(usable[arm])]
        if not candidates:
            lines += [f"{metric}: no baseline has a value (FT needs single-task reference runs).", ""]
            continue
        best = better(candidates, key=lambda arm: usable[arm].mean())
        pairs = [(arm, best) for arm in values if arm != best and len(usable[arm])]
        lines += [f"**{metric}** against the best baseline, **{best}** (n={len(usable[best])}, mean "
                  f"{usable[best].mean():.2f}; {'higher' if better is max else 'lower'} is better):", "",
                  *comparison_table(pairs, usable)]
    return lines


def control_tests(groups: dict[str, list[SequenceRun]], references: list[SequenceRun]) -> list[str]:
    """Markdown: each arm with learned rates against the same method with fixed heterogeneous rates and without
    dropout (any scope), one Holm family per metric: the idea's own question, whatever the best baseline is."""
    values = {arm: per_run_metrics(runs, references) for arm, runs in groups.items()}
    pairs = []
    for arm in values:
        method, dropout, _ = arm.split("/")
        if dropout in LEARNED:
            pairs += [(arm, ref) for control in CONTROLS for ref in values if ref.split("/")[:2] == [method, control]]
    if not pairs:
        return []
    lines = []
    for metric, better in (("P", "higher"), ("F", "lower"), ("FT", "higher")):
        usable = {arm: v[metric][np.isfinite(v[metric])] for arm, v in values.items()}
        family = [(arm, ref) for arm, ref in pairs if len(usable[arm]) and len(usable[ref])]
        if family:
            lines += [f"**{metric}** ({better} is better):", "", *comparison_table(family, usable)]
    return lines


# ---------------------------------------------------------------------------------------------- the rates
def load_rates(run: SequenceRun) -> dict[str, np.ndarray] | None:
    """The run's dropout_rates.npz (network.layer<k>.rates / .usage: (finished tasks, width)), or None."""
    path = Path(run.dir) / RATES_FILE
    if not path.is_file():
        return None
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def kept_units(rates: np.ndarray) -> set[int] | None:
    """The quarter of units with the lowest rates (None when every rate is the same: nothing singles units out)."""
    if np.ptp(rates) < 1e-6:
        return None
    k = max(1, int(round(KEPT_FRACTION * len(rates))))
    return set(np.argsort(rates, kind="stable")[:k].tolist())


def jaccard(a: set[int] | None, b: set[int] | None) -> float:
    """|a & b| / |a | b| (nan when either is undefined)."""
    return math.nan if a is None or b is None else len(a & b) / len(a | b)


def kept_overlap(rates: np.ndarray) -> np.ndarray:
    """(tasks, tasks) Jaccard of the kept units of every two tasks; rates: (tasks, width)."""
    kept = [kept_units(r) for r in rates]
    return np.array([[jaccard(a, b) for b in kept] for a in kept])


def actor_layers(rates: dict[str, np.ndarray]) -> list[str]:
    """The actor's layer keys in order ("actor.layer0", ...)."""
    return sorted({k.rsplit(".", 1)[0] for k in rates if k.startswith("actor.")}, key=natural_key)


def plot_rates(title: str, tasks: list[str], files: list[dict[str, np.ndarray]], path: Path) -> list[float]:
    """Rates after each task per actor layer (boxes over units, seeds pooled) above the kept units' Jaccard between
    tasks (mean over seeds). Returns each layer's mean Jaccard between different tasks."""
    from matplotlib.figure import Figure

    layers = actor_layers(files[0])
    fig = Figure(figsize=(3.6 * len(layers) + 1, 6.6), dpi=100, layout="constrained")
    axes = fig.subplots(2, len(layers), squeeze=False)
    means = []
    for col, layer in enumerate(layers):
        done = min(f[f"{layer}.rates"].shape[0] for f in files)
        pooled = [np.concatenate([f[f"{layer}.rates"][t] for f in files]) for t in range(done)]
        ax = axes[0, col]
        ax.boxplot(pooled, showfliers=False)
        ax.set_xticks(range(1, done + 1), [str(t) for t in range(done)])
        ax.set_ylim(0, 1)
        ax.set_title(f"{layer}: drop rates after each task", fontsize=9)
        ax.set_xlabel("task")
        ax.grid(alpha=0.3)
        with warnings.catch_warnings():  # fixed equal rates leave every overlap undefined: a nan cell, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            overlap = np.nanmean(np.stack([kept_overlap(f[f"{layer}.rates"][:done]) for f in files]), axis=0)
        off_diagonal = overlap[~np.eye(done, dtype=bool)]
        means.append(float(np.nanmean(off_diagonal)) if np.isfinite(off_diagonal).any() else math.nan)
        ax = axes[1, col]
        ax.imshow(overlap, vmin=0, vmax=1, cmap="viridis")
        for i in range(done):
            for j in range(done):
                if np.isfinite(overlap[i, j]):
                    ax.text(j, i, f"{overlap[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="black" if overlap[i, j] > 0.6 else "white")
        ax.set_xticks(range(done), [str(t) for t in range(done)])
        ax.set_yticks(range(done), [str(t) for t in range(done)])
        ax.set_title(f"kept units' Jaccard (chance {CHANCE_JACCARD:.2f})", fontsize=9)
    axes[0, 0].set_ylabel("drop rate (units, seeds pooled)")
    axes[1, 0].set_ylabel("task")
    names = ", ".join(f"{i}: {t}" for i, t in enumerate(tasks))
    fig.suptitle(f"{title} (n={len(files)})\n{names}", fontsize=10)
    fig.savefig(path)
    return means


def start_rates(run: SequenceRun, rates: np.ndarray, usage: np.ndarray) -> np.ndarray | None:
    """(tasks, width) the rates each task's training started from (ideas.learnable_dropout.dropout's task_start), or
    None for fixed rates. concrete: its initial rate (shared scope: the vector as the previous task left it);
    learned_prior: 1 - (1 - init) exp(-alpha a / max a) from the usage of the tasks before."""
    kind, init, alpha = run.config.get("dropout"), float(run.config["dropout_init"]), float(run.config["dropout_alpha"])
    if kind == "concrete":
        start = np.full_like(rates, init)
        if run.config.get("dropout_scope") == "shared":
            start[1:] = rates[:-1]
        return start
    if kind != "learned_prior":
        return None
    used = np.cumsum(np.concatenate([np.zeros_like(usage[:1]), usage[:-1]]), axis=0)  # usage before each task
    keep = np.exp(-alpha * used / np.maximum(used.max(axis=1, keepdims=True), np.finfo(used.dtype).tiny))
    return 1 - (1 - init) * keep


def rate_change(runs: list[SequenceRun], files: list[dict[str, np.ndarray]], layer: str) -> float:
    """Mean |rate at a task's end - rate it started from| over tasks, units and runs (nan for fixed rates): how far
    learning moved the rates."""
    changes = []
    for run, f in zip(runs, files, strict=True):
        if f"{layer}.usage" not in f:  # written before usage was recorded
            continue
        start = start_rates(run, f[f"{layer}.rates"], f[f"{layer}.usage"])
        if start is not None:
            changes.append(np.abs(f[f"{layer}.rates"] - start).mean())
    return float(np.mean(changes)) if changes else math.nan


def rate_sections(groups: dict[str, list[SequenceRun]], sequence: str, out: Path) -> list[str]:
    """Markdown and figures for the arms of one sequence that logged rates."""
    lines, rows = [], []
    for arm, runs in groups.items():
        logged = [(r, f) for r in runs if (f := load_rates(r))]
        if not logged:
            continue
        runs, files = [r for r, _ in logged], [f for _, f in logged]
        name = f"rates_{file_part(sequence)}_{file_part(arm)}.png"
        means = plot_rates(f"{sequence}, {arm}", runs[0].tasks, files, out / name)
        changes = [rate_change(runs, files, layer) for layer in actor_layers(files[0])]
        rows.append(f"| {arm} | {len(files)} | " + " | ".join("n/a" if math.isnan(m) else f"{m:.2f}" for m in means)
                    + " | " + " / ".join("fixed" if math.isnan(c) else f"{c:.3f}" for c in changes)
                    + f" | ![rates]({name}) |")
    if rows:
        depth = len(actor_layers(next(f for f in (load_rates(r) for rs in groups.values() for r in rs) if f)))
        lines += [f"### {sequence}: the learned rates", "",
                  f"Mean Jaccard between tasks of the units each keeps (its {KEPT_FRACTION:.0%} lowest actor drop "
                  f"rates; random sets give {CHANCE_JACCARD:.2f}; fixed rates equal on every unit leave a task's set "
                  f"undefined):", "",
                  "| arm | runs | " + " | ".join(f"layer {k}" for k in range(depth))
                  + " | mean rate change in a task, per layer | figure |",
                  "|---|---|" + "---|" * depth + "---|---|", *rows, "",
                  "The rate change is the mean |rate at a task's end - rate it started from| (over tasks, units and "
                  "runs): how far learning moved the rates from their initialisation (concrete: dropout_init, or in "
                  "the shared scope the previous task's end; learned_prior: the usage prior).", ""]
    return lines


# ---------------------------------------------------------------------------------------------- the report
def basis_sizes(groups: dict[str, list[SequenceRun]]) -> list[str]:
    """GPM's basis size per actor trunk layer at the end of each GPM arm's runs (summary.json), one line per arm: how
    much of each layer's input space the finished tasks hold back from later ones."""
    lines = []
    for arm, runs in groups.items():
        runs = sorted(runs, key=lambda r: r.seed if r.seed is not None else -1)
        sizes = [json.loads((r.dir / "summary.json").read_text()).get("gpm_basis_sizes") for r in runs]
        if sizes and all(sizes):
            width = runs[0].config.get("hidden", "?")
            per_seed = " / ".join(f"seed {r.seed}: [" + ", ".join(map(str, s)) + "]"
                                  for r, s in zip(runs, sizes, strict=True))
            lines.append(f"- {arm}: {per_seed} (layer inputs: the observation, then {width} units per layer)")
    return lines


def write_study(run_dirs: list[Path], out: Path) -> Path:
    """core's continual report, then the tests against the best baseline and the rate figures; returns report.md."""
    report = write_report(run_dirs, out, SPEC)
    runs = [r for r in (load_sequence_run(d) for d in run_dirs) if r is not None]
    complete = [r for r in runs if r.complete]
    references = [r for r in complete if len(r.tasks) == 1
                  and all(str(r.config.get(k)) == v for k, v in REFERENCE.items())]
    by_sequence: dict[str, dict[str, list[SequenceRun]]] = defaultdict(lambda: defaultdict(list))
    for r in complete:
        if len(r.tasks) > 1:
            by_sequence[r.name][label(r)].append(r)
    fewest = min((len(rs) for groups in by_sequence.values() for rs in groups.values()), default=0)
    lines = ["", "## Every arm against the best CW baseline", "",
             f"Differences of means with {CONFIDENCE:.0%} bootstrap CIs ({BOOTSTRAP_REPS} resamples of each arm's "
             f"runs); two-sided exact Mann-Whitney p, Holm-corrected over the arms of a sequence and metric. The last "
             f"column is the smallest Holm p these seed counts allow: where it is above 0.05 no outcome can be "
             f"significant. The best baseline is picked by its mean on these same runs, which flatters it: a "
             f"difference in an arm's favour is conservative, one against it may be overstated. F reads a task's "
             f"success over the last {LAST_EVALUATIONS} evaluations of its own window: an arm still learning there "
             f"shows F < 0 without any backward transfer, and a task never learned shows F near 0; read F beside P.",
             ""]
    if 0 < fewest < FEW_RUNS:
        lines += [f"With as few as {fewest} runs per arm the intervals are descriptive: a percentile bootstrap "
                  f"interval stays inside the range of the runs' resampled means, and on normal data a difference "
                  f"interval of {fewest} against {fewest} runs covers the true difference "
                  f"{difference_coverage(fewest, fewest):.0%} of the time, not {CONFIDENCE:.0%} (the per-arm "
                  f"intervals above fall short the same way). An interval that excludes 0 is not evidence here.", ""]
    for sequence in sorted(by_sequence, key=natural_key):
        groups = dict(sorted(by_sequence[sequence].items(), key=lambda kv: natural_key(kv[0])))
        lines += [f"### {sequence}", "", *baseline_tests(groups, references)]
    for sequence in sorted(by_sequence, key=natural_key):
        groups = dict(sorted(by_sequence[sequence].items(), key=lambda kv: natural_key(kv[0])))
        if controls := control_tests(groups, references):
            lines += [f"## Learned rates against their controls on {sequence}", "",
                      "Each arm with learned rates against the same method with fixed heterogeneous rates (usage "
                      "prior, not learned) and without dropout: the idea's own question. The fixed arm also "
                      "differs in task 0 (no dropout, where learned rates start at dropout_init), its hard masks "
                      "and the absence of Gal's regulariser, so a difference is not learning's alone. Same columns "
                      "and corrections as above (Holm over the pairs of a metric).", "", *controls]
    for sequence in sorted(by_sequence, key=natural_key):
        groups = dict(sorted(by_sequence[sequence].items(), key=lambda kv: natural_key(kv[0])))
        if sizes := basis_sizes(groups):
            lines += [f"## GPM's bases on {sequence}", "",
                      "Basis size per actor trunk layer at the end, per seed: the bases of every task but the last "
                      "(GPM keeps the fewest directions holding the energy threshold of each finished task's layer "
                      "inputs; later updates are projected off them):", "", *sizes, ""]
    rates = []
    for sequence in sorted(by_sequence, key=natural_key):
        groups = dict(sorted(by_sequence[sequence].items(), key=lambda kv: natural_key(kv[0])))
        rates += rate_sections(groups, sequence, out)
    if rates:  # runs without dropout have none
        lines += ["## The rates", "",
                  "Dropout masks only an update's online forward passes of the actor and both critics (acting, "
                  "evaluation and the TD target see none; GPM projects the actor's trunk only), each row with its own "
                  "task's rates, frozen at the task's end: a rate says how much a task was trained through a unit, "
                  "not how the policy acts. Rates after each task are those it trained with (shared scope: the one "
                  "vector as it stood then). A unit's usage, which the prior of the heterogeneous and learned_prior "
                  "kinds reads, is its mean |activation| on the finished task's states.", "", *rates]
    with open(report, "a") as f:
        f.write("\n".join(lines) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    """CLI: `python -m ideas.learnable_dropout.report <run or sweep dirs...> [--out DIR]`; exit 2 on bad input."""
    return cw_report.main(argv, SPEC, "python -m ideas.learnable_dropout.report",
                          write=lambda run_dirs, out, spec: write_study(run_dirs, out))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
