"""report.md, CSV tables and PNG figures from run directories alone, for any idea that passes a ReportSpec.

`write_report` reads the runs, groups them into arms, runs the study's statistics (core.analysis.study) and writes
everything into one folder; `main` is the CLI an idea's `report.py` calls.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

from core.analysis import study
from core.analysis.runs import Run, assign_groups, find_reference, find_run_dirs, load_run, natural_key, sort_key
from core.analysis.spec import METRICS, SPEEDS, ReportSpec

STAT_COLUMNS = ["family", "task", "group_a", "group_b", "metric", "n_a", "n_b", "mean_a", "mean_b", "diff", "U", "p",
                "p_method", "p_holm", "significant", "attainable_p_holm", "mde", "flag"]
AGG_COLUMNS = ["statistic", "metric", "group", "reference", "tasks", "runs", "point", "lo", "hi"]


def curves_file(task: str) -> str:
    """File name of one task's learning-curve figure."""
    return "curves_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", task) + ".png"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _fmt(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _p(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.3g}" if x >= 0.001 else f"{x:.1e}"


def _md_table(headers: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows] + [""]


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _reading(row: dict, alpha: float) -> str:
    if row["significant"]:
        return "**better**" if row["diff"] > 0 else "**worse**"
    if row["attainable_p_holm"] >= alpha:
        return f"cannot reach p < {alpha:g} with these seeds"
    if math.isinf(row["mde"]):
        return "not significant; no effect is detectable at alpha/m with these seeds"
    return f"no difference larger than {row['mde']:.1f} shown"


def _primary_section(ctx: dict) -> list[str]:
    spec, reference, tests = ctx["spec"], ctx["reference"], ctx["tests"]
    primary = [t for t in tests if t["family"] == "primary"]
    out = ["## Primary question", ""]
    if reference is None:
        return out + [f"Reference arm: {ctx['reference_note']}. There is no primary test: every test in this report "
                      "is exploratory.", ""]
    metric = METRICS[spec.primary_metric]
    out += [spec.question or f"Does each arm differ from the reference arm `{reference}` in {metric}?", ""]
    family = _count(len(primary), "primary test")
    out += [f"Reference arm: {ctx['reference_note']}. Primary metric: `{spec.primary_metric}`. Two-sided "
            f"Mann-Whitney U with exact permutation p-values (ties handled), Holm-adjusted over all {family} of the "
            f"study (every task in one family), significance at {spec.alpha:g}. Every other test in this report is "
            "exploratory.", ""]
    out += [f"> {line}" for line in ctx["design"]] + ([""] if ctx["design"] else [])
    if not primary:
        return out + ["No arm shares a task with complete runs of the reference arm: nothing to test.", ""]
    def mde(t: dict) -> str:
        return _fmt(t["mde"]) if not math.isinf(t["mde"]) else "none (alpha/m unreachable)"

    out += _md_table(
        ["task", "arm", "n arm / ref", "arm mean", "ref mean", "difference", "U", "p", "p method", "p (Holm)",
         "attainable p (Holm)", f"min. detectable effect ({spec.power:.0%} power)", "reading", "runs not complete"],
        [[t["task"], f"`{t['group_a']}`", f"{t['n_a']} / {t['n_b']}", _fmt(t["mean_a"]), _fmt(t["mean_b"]),
          _fmt(t["diff"]), _fmt(t["U"]), _p(t["p"]), t["p_method"], _p(t["p_holm"]), _p(t["attainable_p_holm"]),
          mde(t), _reading(t, spec.alpha), f"⚠ {t['flag']}" if t["flag"] else ""] for t in primary])
    out += [f"Attainable p (Holm): the smallest Holm-adjusted p each test could reach with these seed counts (every "
            f"test of the family at its own smallest p). Minimum detectable effect: the shift of the arm's "
            f"{spec.primary_metric} that the exact test at alpha/m = {spec.alpha / len(primary):.2g} (Holm's first "
            f"step) detects with {spec.power:.0%} power, simulated from the observed seed-to-seed spread "
            "(smoothed bootstrap, 2000 draws, seed 0). '⚠' flags an arm or reference with failed, diverged, "
            "unfinished or missing runs: they are not in the test, which favours the arm that fails more.", ""]
    return out


def _task_section(ctx: dict, task: str) -> list[str]:
    spec, reference, horizons = ctx["spec"], ctx["reference"], ctx["horizons"].get(task, {})
    wall, compute = (_fmt(horizons.get(k, math.nan), 0) for k in ("auc_wall", "auc_compute"))
    out = [f"## {task}", ""]
    headers = ["arm", "runs", "seeds", "final return (mean ± std)", "AUC frames", f"AUC wall (≤ {wall} s)",
               f"AUC compute (≤ {compute} s)", "env steps/s", "ms/update", "wall-clock s"]
    headers += [c.title for c in spec.extra_columns]
    rows = []
    for r in (r for r in ctx["group_rows"] if r["task"] == task):
        label = f"`{r['group']}`" + (" (reference)" if r["group"] == reference else "")
        rows.append([label, study.counts_text({k: r[k] for k in (*study.STATES, "unusable")}), r["seeds"],
                     f"{_fmt(r['final_return'])} ± {_fmt(r['final_std'])}", _fmt(r["auc"]), _fmt(r["auc_wall"]),
                     _fmt(r["auc_compute"]), _fmt(r["env_steps_per_s"], 0), _fmt(1000 * r["s_per_update"], 2),
                     _fmt(r["wall_s"], 0)] + [_fmt(r[c.name], c.digits) for c in spec.extra_columns])
    out += _md_table(headers, rows)
    if task not in ctx["horizons"]:
        return out + ["No complete run on this task: no curves or tests.", ""]
    out += [f"![{task} learning curves against frames, wall-clock and update cost]({curves_file(task)})", ""]
    out += ["**Per step or per second?**", ""] + ctx["verdicts"].get(task, []) + [""]
    explore = [t for t in ctx["tests"] if t["task"] == task and t["family"] == "exploratory"
               and reference is not None and t["group_b"] == reference]
    if explore:
        family = _count(ctx["n_exploratory"], "exploratory test")
        out += [f"Exploratory tests against the reference `{reference}` on the other metrics (two-sided Mann-Whitney, "
                f"exact p; Holm over all {family} of the report, which also include every pair of arms: see "
                "stats.csv). Not part of the primary question:", ""]
        out += _md_table(["arm", "metric", "arm mean", "ref mean", "U", "p", "p method", "p (Holm, exploratory)",
                          "runs not complete"],
                         [[f"`{t['group_a']}`", t["metric"], _fmt(t["mean_a"]), _fmt(t["mean_b"]), _fmt(t["U"]),
                           _p(t["p"]), t["p_method"], _p(t["p_holm"]), f"⚠ {t['flag']}" if t["flag"] else ""]
                          for t in explore])
    return out


def _markdown(ctx: dict) -> str:
    usable, bad, tasks, spec, grouping = ctx["usable"], ctx["bad"], ctx["tasks"], ctx["spec"], ctx["grouping"]
    rel, total = ctx["rel"], len(ctx["usable"]) + len(ctx["bad"])
    out = [f"# {spec.title}", ""]
    inputs = ", ".join(f"`{rel(d)}`" for d in ctx["inputs"])
    out += [f"Read {total} run director{'y' if total == 1 else 'ies'} from {inputs} (paths are relative to this "
            f"report). {len(usable)} complete runs enter the statistics; {len(bad)} failed, diverged, unfinished or "
            "missing runs are counted in their arm's row and listed under "
            "[Missing, failed or unfinished runs](#missing-failed-or-unfinished-runs).", ""]
    fixed = ", ".join(f"{k} = {v}" for k, v in grouping.fixed.items())
    out += [f"Tasks: {', '.join(tasks) or 'none'}. Arms are labelled `{'/'.join(grouping.label_keys)}`"
            + (f"; the same in every run, so left out of the labels: {fixed}." if fixed else "."), ""]
    for base, fields in grouping.splits.items():
        out += [f"- **Split:** runs of `{base}` on one task differ in {', '.join(f'`{f}`' for f in fields)}, so they "
                "are separate arms labelled with those values: they are different experiments."]
    for name, values in grouping.between_groups.items():
        out += [f"- Differs between arms beyond the arm labels: `{name}` ({', '.join(values)}): a difference between "
                "those arms is not due to the labelled keys alone."]
    for name, values in grouping.between_tasks.items():
        out += [f"- Set per task: `{name}` ({', '.join(values)})."]
    for name, count in grouping.absent.items():
        out += [f"- `{name}` is missing from {count} run config{'s' if count > 1 else ''} (written before the field "
                "existed): those runs are taken to agree with the others on it."]
    out += [f"- Note: {note}" for note in ctx["notes"]]
    if grouping.splits or grouping.between_groups or grouping.between_tasks or grouping.absent or ctx["notes"]:
        out += [""]
    if not usable:
        out += ["No complete run with evaluation rows was found, so there are no statistics or figures.", ""]
    else:
        out += _primary_section(ctx)
    for task in tasks:
        out += _task_section(ctx, task)

    if usable:
        reference = ctx["reference"]
        out += ["## Across tasks", ""]
        out += ["IQM of the per-run scores pooled over tasks, with 95% stratified-bootstrap CIs "
                f"({study.BOOTSTRAP_REPS} resamples, runs resampled within each task). Each arm is aggregated only "
                "over the tasks where it has complete runs (the `tasks` column). Returns are raw, not normalised. "
                "Exploratory.", ""]
        out += _md_table(["arm", "metric", "tasks", "runs", "IQM", "95% CI"],
                         [[f"`{r['group']}`", r["metric"], r["tasks"], r["runs"], _fmt(r["point"]),
                           f"[{_fmt(r['lo'])}, {_fmt(r['hi'])}]"] for r in ctx["agg_rows"]
                          if r["statistic"] == "iqm"])
        poi = [r for r in ctx["agg_rows"] if r["statistic"] == "probability_of_improvement"]
        if poi:
            out += [f"Probability of improvement over `{reference}`: P(X > Y) + ½ P(X = Y) for a random run X of "
                    "the arm and Y of the reference on the same task, averaged over the tasks both have (rliable); "
                    "0.5 means no difference. 95% stratified-bootstrap CI.", ""]
            out += _md_table(["arm", "metric", "tasks", "P(arm > reference)", "95% CI"],
                             [[f"`{r['group']}`", r["metric"], r["tasks"], _fmt(r["point"], 2),
                               f"[{_fmt(r['lo'], 2)}, {_fmt(r['hi'], 2)}]"] for r in poi])
        out += ["## Speed", "", "![speed per arm](speed.png)", ""]
        out += ["## Scores per run", "", "![final return, AUC and wall-clock AUC per run](scores.png)", ""]
        for fig in spec.extra_figures:
            out += [f"## {fig.title or fig.file}", "", f"![{fig.title or fig.file}]({fig.file})", ""]

    out += ["## Missing, failed or unfinished runs", ""]
    out += (_md_table(["directory", "task", "arm", "seed", "state", "reason"],
                      [[f"`{rel(r.dir)}`", r.task, r.group, "?" if r.seed is None else r.seed, r.state, r.reason]
                       for r in bad]) if bad else ["None: every run directory is complete.", ""])
    out += ["## How the numbers are made", ""]
    out += [
        "- Final return: `final_return` from summary.json (the last eval.csv row when it is null); std across "
        "seeds with ddof=1.",
        "- AUC frames: trapezoid area under evaluation return against frames, divided by the frame span, so it is "
        "in return units (a flat curve at c has AUC c).",
        "- AUC wall: mean return over [0, T] against eval.csv's `wall_s` (all elapsed time of the run, evaluations "
        "included), T = the shortest complete run's end on that task, so every arm gets the same time budget. "
        "Parallel jobs share the machine's cores, so wall-clock times carry the machine's load.",
        "- AUC compute: the same against updates (from train.csv) x the arm's median seconds per update on that task "
        "(1 / `updates_per_s`, training time only): the arm's measured cost without one run's timing noise.",
        "- Tests: two-sided Mann-Whitney U (U is the arm's), p from the permutation distribution of the rank sum "
        "with midranks, every split counted (`exact`) up to 2^62 splits, else 100000 random relabellings with seed "
        "0 (`monte carlo`). Holm: step-down, one family for the primary tests, one for the exploratory ones.",
        "- IQM: mean of the middle 50% (scipy `trim_mean(x, 0.25)`; with fewer than 4 seeds nothing is trimmed).",
        "- Curves: per arm, runs interpolated onto a common grid within the range all of them cover; the band is a "
        "pointwise 95% bootstrap CI of the mean. Only complete runs with evaluation rows are used; every bootstrap "
        "and simulation uses seed 0, so the report is reproducible.",
        "- Arms: runs agree on every config field except the seed and "
        f"{', '.join(f for f in spec.ignored_fields if f != 'seed')}; otherwise they are split (see above).",
        "",
        "Files: `runs.csv` (one row per run directory), `groups.csv` (per task and arm, with run counts by state), "
        "`stats.csv` (every test, primary and exploratory), `aggregate.csv` (IQM and probability of improvement).",
        "",
    ]
    return "\n".join(out)


def write_report(run_dirs: list[Path], out_dir: Path, spec: ReportSpec, reference: str | None = None,
                 inputs: list[Path] | None = None) -> Path:
    """Read the run directories and write report.md, runs/groups/stats/aggregate CSVs and PNGs; returns report.md.

    `reference` (an arm label) overrides the spec's reference arm. Raises ValueError on input it cannot use.
    """
    unique = list(dict.fromkeys(Path(d).resolve() for d in run_dirs))
    if not unique:
        raise ValueError("no run directories to report on")
    runs = [load_run(d, spec) for d in unique]
    grouping = assign_groups(runs, spec)
    usable = [r for r in runs if r.state == "complete"]
    bad = [r for r in runs if r.state != "complete"]
    tasks = sorted({r.task for r in runs if r.config}, key=natural_key)
    groups = sorted({r.group for r in runs if r.config}, key=sort_key)
    reference, reference_note = find_reference(runs, spec, reference)
    used_tasks = [t for t in tasks if any(r.task == t for r in usable)]
    used_groups = [g for g in groups if any(r.group == g for r in usable)]
    horizons = study.score_time_axes(usable, used_tasks)
    tests, notes = study.run_tests(usable, runs, used_tasks, used_groups, reference, spec)

    seen: dict[tuple, int] = defaultdict(int)
    for r in usable:
        seen[(r.task, r.group, r.seed)] += 1
    notes += [f"seed {s} of `{g}` on {t} appears in {k} run directories; all are used"
              for (t, g, s), k in seen.items() if k > 1]

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def rel(p: Path) -> str:
        return os.path.relpath(Path(p).resolve(), out_dir.resolve())

    group_rows = study.group_table(runs, tasks, groups, spec)
    ctx = {"spec": spec, "usable": usable, "bad": bad, "tasks": tasks, "rel": rel, "grouping": grouping,
           "reference": reference, "reference_note": reference_note, "notes": notes, "inputs": inputs or unique,
           "group_rows": group_rows, "tests": tests, "horizons": horizons,
           "n_exploratory": sum(t["family"] == "exploratory" for t in tests),
           "design": study.design_check([t for t in tests if t["family"] == "primary"], spec),
           "verdicts": study.verdicts(group_rows, tests, used_tasks, reference, horizons),
           "agg_rows": study.aggregate_table(usable, used_groups, reference, spec)}

    extras = [c.name for c in spec.extra_columns]
    run_columns = ["dir", "task", "group", "seed", "state", "status", *METRICS, *SPEEDS, *extras, "reason"]
    _write_csv(out_dir / "runs.csv", [_run_row(r, rel) for r in runs], run_columns)
    group_columns = ["task", "group", *study.STATES, "unusable", "n", "seeds", *METRICS, "final_std", "iqm_final",
                     *SPEEDS, *extras]
    _write_csv(out_dir / "groups.csv", group_rows, group_columns)
    _write_csv(out_dir / "stats.csv", tests, STAT_COLUMNS)
    _write_csv(out_dir / "aggregate.csv", ctx["agg_rows"], AGG_COLUMNS)
    if usable:
        from core.analysis import figures  # matplotlib loads only when there is something to plot

        colors = figures.palette(used_groups)
        legend = "/".join(grouping.label_keys)
        for task in used_tasks:
            figures.plot_curves(usable, task, used_groups, colors, legend, horizons[task],
                                out_dir / curves_file(task))
        figures.plot_speed(usable, used_tasks, used_groups, legend, out_dir / "speed.png")
        figures.plot_scores(usable, used_tasks, used_groups, colors, out_dir / "scores.png")
        for fig in spec.extra_figures:
            figures.plot_scatter(usable, used_tasks, used_groups, colors, fig, spec, out_dir / fig.file)
    report = out_dir / "report.md"
    report.write_text(_markdown(ctx))
    return report


def _run_row(run: Run, rel) -> dict:
    return {"dir": rel(run.dir), "task": run.task, "group": run.group, "seed": run.seed, "state": run.state,
            "status": run.status, **run.scores, **run.speed, **run.extras, "reason": run.reason}


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None, spec: ReportSpec, prog: str | None = None) -> int:
    """CLI: `<prog> <run or sweep dirs...> [--out DIR] [--reference ARM]`; returns the exit code (2 on bad input)."""
    parser = argparse.ArgumentParser(prog=prog, description=f"{spec.title}: report.md, CSV statistics and PNG "
                                     "figures from run or sweep directories alone.")
    parser.add_argument("dirs", nargs="+", type=Path, help="run or sweep directories (searched recursively)")
    parser.add_argument("--out", type=Path, help="output folder (default: the single given directory, else ./report)")
    parser.add_argument("--reference", help="arm label to test every other arm against (default: the study's "
                        "declared reference arm)")
    args = parser.parse_args(argv)
    run_dirs: list[Path] = []
    for d in args.dirs:
        if not d.is_dir():
            return _fail(f"no such directory: {d}")
        found = find_run_dirs(d)
        if not found:
            return _fail(f"no run directories (folders holding .hydra/config.yaml) under {d}")
        run_dirs += found
    out = args.out or (args.dirs[0] if len(args.dirs) == 1 else Path("report"))
    if out.exists() and not out.is_dir():
        return _fail(f"--out {out} exists and is not a directory")
    try:
        report = write_report(run_dirs, out, spec, args.reference, inputs=args.dirs)
    except ValueError as err:
        return _fail(str(err))
    n = len(set(run_dirs))
    print(f"wrote {report} from {n} run director{'y' if n == 1 else 'ies'}")
    return 0
