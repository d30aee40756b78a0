"""Offline analysis of run directories: loading, statistics, report.md, CSV tables and figures.

No torch, no knowledge of any idea: an idea describes its study with a `ReportSpec` and calls `main`.
The figures module (matplotlib) is imported only when a report has runs to plot.
"""

from core.analysis.report import main, write_report
from core.analysis.runs import Run, find_run_dirs, load_run
from core.analysis.spec import DEFAULT_IGNORED_FIELDS, METRICS, SPEEDS, ExtraColumn, ReportSpec, ScatterFigure

__all__ = ["DEFAULT_IGNORED_FIELDS", "METRICS", "SPEEDS", "ExtraColumn", "ReportSpec", "Run", "ScatterFigure",
           "find_run_dirs", "load_run", "main", "write_report"]
