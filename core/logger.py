"""Run-directory logging: eval.csv, train.csv and summary.json always (each rewritten atomically), wandb when enabled.

Rows live in memory and every write replaces the whole file through a temporary file, so a run killed at any instant
leaves complete files; on resume, rows past the checkpoint are dropped and written again by the resumed run.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import uuid
from io import StringIO
from pathlib import Path
from typing import Any

EVAL_COLUMNS = ["step", "frame", "return", "return_std", "episodes", "wall_s"]  # first; an idea's columns follow


def atomic_write_text(path: Path, text: str) -> None:
    """Write text to path through a temporary file and a rename (readers never see half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts ([] when the file does not exist)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def git_commit() -> str | None:
    """The project's git commit, if it is a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


class Logger:
    """Writes the run directory's CSV/JSON files and mirrors metrics to wandb."""

    def __init__(self, run_dir: Path, config: dict, wandb_mode: str, project: str, entity: str | None, group: str,
                 name: str) -> None:
        self.run_dir = run_dir
        self.eval_rows = read_csv(run_dir / "eval.csv")
        self.train_rows = read_csv(run_dir / "train.csv")
        self.eval_columns: list[str] = list(self.eval_rows[0]) if self.eval_rows else list(EVAL_COLUMNS)
        self.train_columns: list[str] = list(self.train_rows[0]) if self.train_rows else []
        self.summary: dict[str, Any] = {}
        if (run_dir / "summary.json").exists():
            self.summary = json.loads((run_dir / "summary.json").read_text())
        self.summary.setdefault("git_commit", git_commit())
        self.wandb = None
        if wandb_mode != "disabled":
            import wandb

            run_id_file = run_dir / "wandb_id.txt"  # one wandb run per run directory, resumed with it
            if not run_id_file.exists():
                atomic_write_text(run_id_file, uuid.uuid4().hex[:12])
            config = config | {"git_commit": self.summary["git_commit"]}
            self.wandb = wandb.init(project=project, entity=entity, group=group, name=name, config=config,
                                    dir=str(run_dir), mode=wandb_mode, id=run_id_file.read_text().strip(),
                                    resume="allow", settings=wandb.Settings(console="off", quiet=True))
            # x-axis = our step column, not wandb's own counter, so rows redone after a resume are not dropped
            self.wandb.define_metric("*", step_metric="step")

    def rewind(self, step: int) -> None:
        """Drop rows the resumed run will log again: evaluations at `step` and later (the evaluation at the
        checkpoint's step runs after it) and training rows after `step` (the row at `step` is never redone)."""
        self.eval_rows = [r for r in self.eval_rows if int(float(r["step"])) < step]
        self.train_rows = [r for r in self.train_rows if int(float(r["step"])) <= step]
        self._write_csv("eval.csv", self.eval_columns, self.eval_rows)
        if self.train_columns:
            self._write_csv("train.csv", self.train_columns, self.train_rows)

    def log_eval(self, row: dict[str, float]) -> None:
        """Append one evaluation row: EVAL_COLUMNS, then any column an idea or trainer adds (none is dropped)."""
        self.eval_columns += [key for key in row if key not in self.eval_columns]
        self.eval_rows.append(row)
        self._write_csv("eval.csv", self.eval_columns, self.eval_rows)
        if self.wandb:
            self.wandb.log({f"eval/{k}": v for k, v in row.items() if k not in ("step", "frame")} |
                           {"step": row["step"], "frame": row["frame"]})

    def log_train(self, row: dict[str, float]) -> None:
        """Append one training row: step, frame, then namespaced metrics (train/, time/, perf/)."""
        self.train_columns += [key for key in row if key not in self.train_columns]  # e.g. metrics after warm-up
        self.train_rows.append(row)
        self._write_csv("train.csv", self.train_columns, self.train_rows)
        if self.wandb:
            self.wandb.log(dict(row))

    def write_summary(self, **values: Any) -> None:
        """Update summary.json (status, final_return, env_steps_per_s, wall_s, ...)."""
        self.summary.update(values)
        atomic_write_text(self.run_dir / "summary.json", json.dumps(self.summary, indent=2) + "\n")
        if self.wandb:
            self.wandb.summary.update({k: v for k, v in values.items() if isinstance(v, int | float | str)})

    def close(self) -> None:
        """Finish the wandb run (its offline files are complete after this)."""
        if self.wandb:
            self.wandb.finish()
            self.wandb = None

    def _write_csv(self, name: str, columns: list[str], rows: list[dict]) -> None:
        buf = StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.run_dir / name, buf.getvalue())
