"""Run directories as read from disk, and the arms (groups) they form.

A run directory is a folder holding `.hydra/config.yaml`; its `eval.csv`, `train.csv` and `summary.json` are read
when present, with whatever extra columns an idea logged. A group is one setting of the spec's group keys; runs that
share it but differ in any other config field (bar the seed and the spec's ignored fields) on one task are split
into separate groups named after the fields that differ, so a group always means one experiment.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from core.analysis import stats
from core.analysis.spec import ExtraColumn, ReportSpec

MISSING = "-"  # value shown for a config field a run lacks
STATES = ("complete", "failed", "diverged", "running", "missing")  # per-arm run counts; anything else is "unusable"


@dataclass
class Run:
    """One run directory; `reason` is empty when the run enters the statistics."""

    dir: Path
    config: dict = field(default_factory=dict)  # flattened .hydra/config.yaml: dotted key -> value
    task: str = MISSING
    values: dict = field(default_factory=dict)  # group key (and "idea") -> value as text
    seed: int | None = None
    status: str = "missing"  # summary.json's status; "missing" without summary.json
    reason: str = ""
    action_repeat: int | None = None
    frames: np.ndarray = field(default_factory=lambda: np.zeros(0))  # evaluation points, sorted by frame
    returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    wall: np.ndarray = field(default_factory=lambda: np.zeros(0))  # eval.csv wall_s (nan where absent)
    updates: np.ndarray = field(default_factory=lambda: np.zeros(0))  # updates done at each evaluation (nan: unknown)
    compute: np.ndarray = field(default_factory=lambda: np.zeros(0))  # updates x the arm's seconds per update
    eval_columns: dict = field(default_factory=dict)  # every eval.csv column, as floats (nan where not a number)
    summary: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)  # METRICS name -> value
    speed: dict = field(default_factory=dict)  # SPEEDS name -> value
    extras: dict = field(default_factory=dict)  # ExtraColumn name -> value
    group: str = ""

    @property
    def state(self) -> str:
        """complete (enters the statistics), failed, diverged, running, missing, or unusable (anything else)."""
        if not self.reason:
            return "complete"
        return self.status if self.status in STATES[1:] else "unusable"

    def value(self, name: str) -> float:
        """A score, speed or extra column of this run by name (nan when the run lacks it)."""
        for table in (self.scores, self.speed, self.extras):
            if name in table:
                return table[name]
        return math.nan


def natural_key(text: str) -> list:
    """Sort key that orders embedded numbers by value: 2 before 10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(text))]


def find_run_dirs(root: Path) -> list[Path]:
    """Run directories at or below `root`: folders that hold `.hydra/config.yaml`, in natural order (0, 1, ..., 10)."""
    root = Path(root)
    if (root / ".hydra" / "config.yaml").is_file():
        return [root]
    found = {p.parent.parent for p in root.rglob("config.yaml") if p.parent.name == ".hydra"}
    return sorted(found, key=lambda p: natural_key(p.as_posix()))


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _columns(rows: list[dict]) -> dict[str, np.ndarray]:
    """Every column of CSV rows as a float array; text cells and cells of short rows become nan."""
    names = list(dict.fromkeys(k for row in rows for k in row if k is not None))
    return {name: np.array([_float(row.get(name)) for row in rows]) for name in names}


def _reduce(values: np.ndarray, how: str) -> float:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan
    return float(values[-1] if how == "last" else values.mean())


def flatten(config: dict, prefix: str = "") -> dict:
    """Nested config -> {dotted key: value}; lists stay values."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _extra(column: ExtraColumn, summary: dict, train: dict, evals: dict) -> float:
    if column.summary and math.isfinite(_float(summary.get(column.summary))):
        return _float(summary[column.summary])
    for table, name in ((train, column.train), (evals, column.eval)):
        if name and name in table:
            value = _reduce(table[name], column.reduce)
            if math.isfinite(value):
                return value
    return math.nan


def load_run(run_dir: Path, spec: ReportSpec) -> Run:
    """Read one run directory; never raises for a broken run, it sets `status` and `reason` instead."""
    run = Run(dir=Path(run_dir))
    try:
        config = yaml.safe_load((run.dir / ".hydra" / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        run.status, run.reason = "unreadable", f"cannot read .hydra/config.yaml: {err}"
        return run
    run.config = flatten(config) if isinstance(config, dict) else {}
    run.task = str(run.config.get("task", MISSING))
    run.values = {k: MISSING if run.config.get(k) is None else str(run.config[k]) for k in ["idea", *spec.group_keys]}
    run.seed = run.config.get("seed") if isinstance(run.config.get("seed"), int) else None
    repeat = run.config.get("action_repeat")
    run.action_repeat = repeat if isinstance(repeat, int) else None

    evals = _columns(_read_csv(run.dir / "eval.csv"))
    train = _columns(_read_csv(run.dir / "train.csv"))
    run.eval_columns = evals
    size = len(next(iter(evals.values()))) if evals else 0
    step, frame, ret = (evals.get(c, np.full(size, np.nan)) for c in ("step", "frame", "return"))
    frame = np.where(np.isfinite(frame), frame, step * (run.action_repeat or 1))
    keep = np.isfinite(ret) & np.isfinite(frame)
    if keep.any():
        order = np.argsort(frame[keep], kind="stable")
        run.frames, run.returns = frame[keep][order], ret[keep][order]
        run.wall = evals.get("wall_s", np.full(size, np.nan))[keep][order]
        run.scores["auc"] = stats.auc(run.frames, run.returns)
        eval_steps = step[keep][order]

    summary_path = run.dir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    except (OSError, ValueError) as err:
        run.status, run.reason = "unreadable", f"cannot read summary.json: {err}"
        return run
    if summary is not None and not isinstance(summary, dict):
        run.status, run.reason = "unreadable", "summary.json is not a JSON object"
        return run
    if keep.any():  # updates done by each evaluation, from train.csv's (step, updates) rows
        known = {0.0: 0.0} if "updates" in train else {}
        for s, u in zip(train.get("step", []), train.get("updates", []), strict=False):
            if math.isfinite(s) and math.isfinite(u):
                known[float(s)] = float(u)
        if summary and math.isfinite(_float(summary.get("step"))) and math.isfinite(_float(summary.get("updates"))):
            known[_float(summary["step"])] = _float(summary["updates"])
        xs = sorted(known)
        run.updates = (np.interp(eval_steps, xs, [known[x] for x in xs]) if len(xs) > 1
                       else np.full(run.frames.size, np.nan))
    if summary is None:
        run.reason = ("no summary.json and no eval rows (never started or died before the first evaluation)"
                      if not keep.any() else f"no summary.json (eval.csv has {int(keep.sum())} rows)")
        return run
    run.summary = summary

    run.status = str(run.summary.get("status", "unknown"))
    final = _float(run.summary.get("final_return"))
    run.scores["final_return"] = final if math.isfinite(final) else (float(run.returns[-1]) if keep.any() else math.nan)
    for name, column in (("env_steps_per_s", "time/env_steps_per_s"), ("updates_per_s", "time/updates_per_s")):
        value = _float(run.summary.get(name))
        run.speed[name] = value if math.isfinite(value) else _reduce(train.get(column, np.zeros(0)), "mean")
    run.speed["s_per_update"] = 1.0 / run.speed["updates_per_s"] if run.speed["updates_per_s"] > 0 else math.nan
    wall = _float(run.summary.get("wall_s"))
    run.speed["wall_s"] = wall if math.isfinite(wall) else _reduce(run.wall, "last")
    run.extras = {c.name: _extra(c, run.summary, train, evals) for c in spec.extra_columns}

    detail = run.summary.get("error") or run.summary.get("reason")
    if run.status == "diverged" and not detail and "diverged_at_step" in run.summary:
        detail = f"non-finite {run.summary.get('nonfinite', 'value')} at step {run.summary['diverged_at_step']}"
    if run.status in ("failed", "diverged"):
        run.reason = f"status {run.status}" + (f": {detail}" if detail else "")
    elif run.status == "running":
        run.reason = (f"status running (step {run.summary.get('step', '?')} of {run.summary.get('steps', '?')}): "
                      "unfinished or killed")
    elif run.status != "complete":
        run.reason = f"unknown status {run.status!r}"
    elif not keep.any():
        run.reason = "status complete but eval.csv has no rows"
    elif not math.isfinite(run.scores["final_return"]):
        run.reason = "status complete but no final return"
    return run


# ---------------------------------------------------------------- groups


def _is_number(text: str) -> bool:
    return math.isfinite(_float(text))


def sort_key(label: str) -> list:
    """Order group labels: numbers by value, text alphabetically, part by part."""
    return [(0, float(p), "") if _is_number(p) else (1, 0.0, p) for p in re.split(r"[/ \[\],=]+", label)]


def _ignored(name: str, ignored: tuple[str, ...]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in ignored)


@dataclass
class Grouping:
    """How runs were grouped: the keys in the labels, the constant keys, the splits and the other varying fields."""

    label_keys: list[str]
    fixed: dict  # group key -> its one value (left out of the labels)
    splits: dict  # base label -> fields that differ between runs of it on one task (the group was split on them)
    between_groups: dict  # field -> sorted values: differs between groups on one task (a confound worth knowing)
    between_tasks: dict  # field -> sorted values: differs only from task to task
    absent: dict  # field -> how many runs' configs lack it (older runs); they are taken to agree with the others


def assign_groups(runs: list[Run], spec: ReportSpec) -> Grouping:
    """Label each run's group (run.group) and describe the grouping.

    Keys with one value across every run are left out of the labels; `idea` joins the keys only when runs of several
    ideas are mixed. A label that would be a bare number reads `key=value`. A group whose runs on one task differ in
    a config field that is not ignored is split, each part labelled `base [field=value, ...]`.
    """
    readable = [r for r in runs if r.config]
    keys = (["idea"] if len({r.values.get("idea") for r in readable}) > 1 else []) + list(spec.group_keys)
    varying = [k for k in keys if len({r.values.get(k, MISSING) for r in readable}) > 1]
    shown = varying or list(spec.group_keys)
    fixed = {k: readable[0].values.get(k, MISSING) for k in spec.group_keys if k not in shown} if readable else {}
    skip = set(keys) | {"task", "idea"}

    def base_label(run: Run) -> str:
        values = [run.values.get(k, MISSING) for k in shown]
        if len(shown) == 1 and _is_number(values[0]):
            return f"{shown[0]}={values[0]}"
        return "/".join(v for v in values if v != MISSING) or MISSING

    fields = sorted({f for r in readable for f in r.config if f not in skip and not _ignored(f, spec.ignored_fields)})
    by_base: dict[str, list[Run]] = defaultdict(list)
    for run in readable:
        by_base[base_label(run)].append(run)

    def differs(members: list[Run], name: str) -> bool:
        # a run whose config lacks the field was written before the field existed: it ran with the field's
        # default, which the report cannot know, so it is taken to agree (and the field is noted below)
        by_task = defaultdict(set)
        for r in members:
            if name in r.config:
                by_task[r.task].add(str(r.config[name]))
        return any(len(v) > 1 for v in by_task.values())

    splits = {}
    for base, members in by_base.items():
        split_on = [f for f in fields if differs(members, f)]
        if split_on:
            splits[base] = split_on
        for run in members:
            run.group = base + (" [" + ", ".join(f"{f}={run.config.get(f, MISSING)}" for f in split_on) + "]"
                                if split_on else "")
    for run in runs:
        if not run.config:
            run.group = MISSING

    split_fields = {f for fs in splits.values() for f in fs}
    between_groups, between_tasks = {}, {}
    for name in fields:
        values = sorted({str(r.config[name]) for r in readable if name in r.config}, key=natural_key)
        if len(values) < 2 or name in split_fields:
            continue
        (between_groups if differs(readable, name) else between_tasks)[name] = values
    absent = {name: sum(name not in r.config for r in readable) for name in fields}
    return Grouping(shown, fixed, splits, between_groups, between_tasks, {k: v for k, v in absent.items() if v})


def _same(a, b) -> bool:
    return str(a) == str(b) or (_is_number(str(a)) and _is_number(str(b)) and float(a) == float(b))


def find_reference(runs: list[Run], spec: ReportSpec, requested: str | None = None) -> tuple[str | None, str]:
    """(reference group label or None, a note for the report). `requested` (a label) overrides the spec's arm."""
    labels = sorted({r.group for r in runs if r.config}, key=sort_key)
    if requested:
        if requested not in labels:
            raise ValueError(f"reference group {requested!r} is not one of: {', '.join(labels)}")
        return requested, f"`{requested}` (chosen with --reference)"
    if not spec.reference:
        return None, "none declared by the study"
    wanted = ", ".join(f"{k}={v}" for k, v in spec.reference.items())
    matches = [r for r in runs if r.config and all(_same(r.values.get(k), v) for k, v in spec.reference.items())]
    if not matches:
        return None, f"the study's reference arm ({wanted}) has no runs here"
    counts = defaultdict(int)
    for r in matches:
        counts[r.group] += r.state == "complete"
    label = max(sorted(counts, key=sort_key), key=lambda g: counts[g])
    note = f"`{label}` ({wanted}, the study's declared reference arm)"
    if len(counts) > 1:
        others = ", ".join(f"`{g}`" for g in counts if g != label)
        note += f"; it was split, so the part with the most complete runs is used (others: {others})"
    return label, note
