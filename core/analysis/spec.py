"""What an idea tells the report: its arms (group keys), its reference arm, its primary metric and its extra columns.

An idea's `report.py` builds one `ReportSpec` and calls `core.analysis.main(argv, spec, prog)`; nothing in this
package knows any idea.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Per-run scores the report computes, the tests run on, and the figures can plot.
METRICS = {
    "auc": "AUC against env frames (mean evaluation return over the run's frame span)",
    "final_return": "final evaluation return",
    "auc_wall": "AUC against wall-clock time up to the task's common horizon",
    "auc_compute": "AUC against updates x the arm's measured seconds per update, up to the task's common horizon",
}
# Per-run speed values read from summary.json (train.csv as a fallback); figures may plot them too.
SPEEDS = {
    "env_steps_per_s": "env steps per second of training time",
    "updates_per_s": "updates per second of training time",
    "s_per_update": "seconds of training time per update (1 / updates_per_s)",
    "wall_s": "wall-clock seconds of the whole run (evaluations included, over every resume)",
}
# Config fields that do not change what a run computes: runs that differ only in these may share a group. These
# are the shared schema's; an idea adds its own (e.g. how often it times its sampler) in its spec.
DEFAULT_IGNORED_FIELDS = ("seed", "device", "torch_threads", "progress", "wandb", "log_every", "checkpoint_every")


@dataclass(frozen=True)
class ExtraColumn:
    """One idea-specific number per run, read from the first place that has it (summary.json, train.csv, eval.csv)."""

    name: str  # column name in runs.csv and groups.csv; also a name figures can plot
    title: str  # column header in report.md
    summary: str | None = None  # summary.json key, read first
    train: str | None = None  # train.csv column, read when the summary lacks the key
    eval: str | None = None  # eval.csv column, read when neither has it
    reduce: str = "last"  # how a CSV column becomes one number: last | mean (finite values only)
    digits: int = 1  # decimals shown in report.md

    def __post_init__(self) -> None:
        if self.reduce not in ("last", "mean"):
            raise ValueError(f"ExtraColumn {self.name!r}: reduce must be 'last' or 'mean', got {self.reduce!r}")
        if not (self.summary or self.train or self.eval):
            raise ValueError(f"ExtraColumn {self.name!r} names no place to read it from")


@dataclass(frozen=True)
class ScatterFigure:
    """An extra figure: one panel per task, every run as a dot at (x, y) coloured by arm, arm means as crosses."""

    file: str  # PNG file name in the report folder
    x: str  # a METRICS or SPEEDS name, or an ExtraColumn name
    y: str
    title: str = ""


@dataclass(frozen=True)
class ReportSpec:
    """A study's report: how runs form arms, which arm every other is tested against, and on what."""

    title: str  # first line of report.md
    group_keys: tuple[str, ...]  # config fields whose values name an arm (keys constant across runs are left out)
    reference: Mapping[str, Any] | None = None  # config values of the reference arm; None: no primary question
    primary_metric: str = "auc"  # the declared primary metric, one of METRICS
    question: str = ""  # one sentence stating the primary question, shown above the primary tests
    extra_columns: tuple[ExtraColumn, ...] = ()
    extra_figures: tuple[ScatterFigure, ...] = ()
    ignored_fields: tuple[str, ...] = DEFAULT_IGNORED_FIELDS  # a dotted field also matches its subfields
    alpha: float = 0.05
    power: float = 0.8  # power at which the minimum detectable effect is stated

    def __post_init__(self) -> None:
        if self.primary_metric not in METRICS:
            raise ValueError(f"primary_metric {self.primary_metric!r} is not one of: {', '.join(METRICS)}")
        names = [c.name for c in self.extra_columns]
        clash = sorted({n for n in names if names.count(n) > 1 or n in METRICS or n in SPEEDS})
        if clash:
            raise ValueError(f"extra column names clash with each other or a built-in: {', '.join(clash)}")
        plottable = set(METRICS) | set(SPEEDS) | set(names)
        for fig in self.extra_figures:
            for axis in (fig.x, fig.y):
                if axis not in plottable:
                    raise ValueError(f"figure {fig.file}: {axis!r} is not one of: {', '.join(sorted(plottable))}")
        if self.reference is not None:
            unknown = sorted(set(self.reference) - set(self.group_keys))
            if unknown:
                raise ValueError(f"reference names fields that are not group keys: {', '.join(unknown)}")
