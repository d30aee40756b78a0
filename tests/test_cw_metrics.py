"""Continual World's metrics (core.analysis.continual) against hand computations on constructed success curves, and
the continual report (core.analysis.cw_report) on constructed run directories."""

import csv
import json
import math

import numpy as np
import pytest
import yaml

from core.analysis.continual import (
    average_performance,
    end_of_task_success,
    final_success,
    forgetting,
    forward_transfer,
    forward_transfer_ci,
    forward_transfer_per_task,
    load_sequence_run,
    mean_ci,
    method_metrics,
    reference_aucs,
    window_auc,
)
from core.analysis.cw_report import ContinualReportSpec, figure_file, main


def fine_tuning_curves(evals_per_task: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Two tasks of 100 steps, evaluated every 10: each task is learned to 1 in its own window; task 0 is forgotten
    (back to 0) during task 1's. Returns (steps (20,), success (20, 2))."""
    steps = np.arange(1, 2 * evals_per_task + 1) * 10
    ramp = np.clip(np.arange(evals_per_task) / 4, 0, 1)  # 0, .25, .5, .75, 1, 1, ...: the last 5 are 1
    task0 = np.r_[ramp, 1 - ramp]  # ... and forgotten during task 1's: its last 5 evaluations are 0
    task1 = np.r_[np.zeros(evals_per_task), ramp]
    return steps, np.stack([task0, task1], axis=1)


def test_fine_tuning_shaped_curves_give_p_half_and_f_half():
    steps, success = fine_tuning_curves()
    assert average_performance(success) == 0.5  # final: task 0 at 0, task 1 at 1
    assert forgetting(steps, success, 100) == 0.5  # task 0 forgot 1 - 0; task 1 (the last) nothing
    np.testing.assert_array_equal(end_of_task_success(steps, success, 100), [1.0, 1.0])
    np.testing.assert_array_equal(final_success(success), [0.0, 1.0])


def test_metrics_equal_a_hand_computation_with_few_evaluations():
    """Three evaluations per window, so 'the last 5' reaches back into the previous window for the final values."""
    steps = np.array([10, 20, 30, 40, 50, 60])  # D = 30
    success = np.array([[0.1, 0.0], [0.4, 0.1], [0.7, 0.2], [0.5, 0.3], [0.3, 0.6], [0.2, 0.8]])
    final = [(0.4 + 0.7 + 0.5 + 0.3 + 0.2) / 5, (0.1 + 0.2 + 0.3 + 0.6 + 0.8) / 5]
    end = [(0.1 + 0.4 + 0.7) / 3, (0.3 + 0.6 + 0.8) / 3]  # each window has only 3 evaluations
    np.testing.assert_allclose(final_success(success), final)
    np.testing.assert_allclose(end_of_task_success(steps, success, 30), end)
    assert average_performance(success) == pytest.approx((final[0] + final[1]) / 2)
    assert forgetting(steps, success, 30) == pytest.approx(((end[0] - final[0]) + (end[1] - final[1])) / 2)
    np.testing.assert_allclose(window_auc(steps, success, 30), [(0.1 + 0.4 + 0.7) / 3, (0.3 + 0.6 + 0.8) / 3])


def test_forward_transfer_normalises_after_averaging_over_seeds():
    auc = np.array([[0.6, 0.2], [0.4, 0.4]])  # two runs x two tasks: means 0.5, 0.3
    refs = [np.array([0.5, 0.3]), np.array([0.2])]  # task 0's references average 0.4, task 1's 0.2
    per_task = [(0.5 - 0.4) / (1 - 0.4), (0.3 - 0.2) / (1 - 0.2)]
    np.testing.assert_allclose(forward_transfer_per_task(auc, refs), per_task)
    assert forward_transfer(auc, refs) == pytest.approx(np.mean(per_task))
    # a reference that solved its task from the start has no term, and a task without references neither
    assert forward_transfer(auc, [np.array([1.0]), np.array([0.2])]) == pytest.approx(per_task[1])
    assert math.isnan(forward_transfer(auc, [np.array([]), np.array([])]))


def test_bootstrap_intervals_are_seeded_90_percent_intervals_around_the_mean():
    assert mean_ci(np.full(4, 0.3)) == pytest.approx((0.3, 0.3, 0.3))
    values = np.array([0.1, 0.2, 0.3, 0.9])
    point, lo, hi = mean_ci(values)
    assert point == pytest.approx(0.375) and 0.1 <= lo < point < hi <= 0.9 and mean_ci(values) == (point, lo, hi)
    wide = mean_ci(values, confidence=0.99)
    assert wide[1] <= lo and wide[2] >= hi  # a higher confidence never narrows the interval
    auc = np.array([[0.5, 0.3]])
    refs = [np.array([0.4]), np.array([0.2])]
    assert forward_transfer_ci(auc, refs) == pytest.approx((forward_transfer(auc, refs),) * 3)  # one run each


def write_run(run_dir, tasks, steps_per_task, success, seed, method="finetune", status="complete", every=None):
    """A run directory as core.continual leaves it: config, one eval.csv row per task per evaluation (every `every`
    steps; by default spread over the whole budget), summary."""
    (run_dir / ".hydra").mkdir(parents=True)
    name = "+".join(tasks) + f"@{steps_per_task}"
    config = dict(task=name, sequence="+".join(tasks), steps_per_task=steps_per_task, seed=seed, method=method)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    steps = np.arange(1, len(success) + 1) * (every or len(tasks) * steps_per_task // len(success))
    with open(run_dir / "eval.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["step", "return", "task_index", "task", "success"])
        writer.writeheader()
        for step, row in zip(steps, success, strict=True):
            for i, task in enumerate(tasks):
                writer.writerow(dict(step=step, task_index=i, task=task, success=row[i], **{"return": 100 * row[i]}))
    (run_dir / "summary.json").write_text(json.dumps(dict(status=status)))


def test_report_from_run_directories(tmp_path):
    tasks = ["mw-hammer", "mw-push"]
    steps, forgetful = fine_tuning_curves()
    keeper = forgetful.copy()
    keeper[10:, 0] = 1.0  # remembers task 0
    for seed in range(2):
        write_run(tmp_path / f"ft{seed}", tasks, 100, forgetful, seed)
        write_run(tmp_path / f"pn{seed}", tasks, 100, keeper, seed, method="packnet")
        for task in tasks:  # single-task references: learn at the same pace, from scratch
            write_run(tmp_path / f"ref-{task}-{seed}", [task], 100, forgetful[:10, :1], seed)
    write_run(tmp_path / "killed", tasks, 100, forgetful[:5], 9, status="running")

    run = load_sequence_run(tmp_path / "ft0")
    assert run.tasks == tasks and run.steps.tolist() == steps.tolist() and run.name == "mw-hammer+mw-push@100"
    np.testing.assert_array_equal(run.success, forgetful)
    references = [load_sequence_run(tmp_path / f"ref-{t}-{s}") for t in tasks for s in range(2)]
    metrics = method_metrics("finetune", [run, load_sequence_run(tmp_path / "ft1")], references)
    assert metrics.performance == pytest.approx((0.5, 0.5, 0.5)) and metrics.forgetting[0] == pytest.approx(0.5)
    assert metrics.forward_transfer[0] == pytest.approx(0.0)  # task 1's curve in its window = its reference's

    assert main([str(tmp_path), "--out", str(tmp_path / "out")], ContinualReportSpec("CW test")) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| finetune | 2 | 0.50 [0.50, 0.50] | 0.50 [0.50, 0.50] | 0.00 [0.00, 0.00] |" in report
    assert "| packnet | 2 | 1.00 [1.00, 1.00] | 0.00 [0.00, 0.00] |" in report
    assert "killed" in report and "status running" in report
    assert (tmp_path / "out" / figure_file("mw-hammer+mw-push@100")).stat().st_size > 10_000
    rows = list(csv.DictReader(open(tmp_path / "out" / "metrics.csv")))
    assert {(r["group"], r["metric"]) for r in rows} >= {("packnet", "forgetting"), ("finetune", "performance")}


def test_a_diverged_or_unfinished_run_never_passes_for_a_finished_one(tmp_path):
    """A diverged run ends with status "diverged" and its last evaluations mid-run: read as complete, its "final"
    would be mid-run and, as a reference, its shorter curve would inflate FT. Missing values give no interval."""
    tasks = ["mw-hammer", "mw-push"]
    _, forgetful = fine_tuning_curves()
    write_run(tmp_path / "ft0", tasks, 100, forgetful, 0)
    write_run(tmp_path / "diverged", tasks, 100, forgetful, 1, status="diverged")
    write_run(tmp_path / "short", tasks, 100, forgetful[:10], 2, every=10)  # "complete", evaluated to 100 of 200
    write_run(tmp_path / "ref-full", ["mw-push"], 100, forgetful[:10, :1], 0)
    write_run(tmp_path / "ref-short", ["mw-push"], 100, forgetful[:5, :1] * 0, 1, every=10)
    ft0, diverged, short = (load_sequence_run(tmp_path / name) for name in ("ft0", "diverged", "short"))
    assert ft0.complete and not diverged.complete and not short.complete
    for bad in (diverged, short):
        with pytest.raises(ValueError, match=f"{bad.dir}.*not complete"):
            method_metrics("finetune", [ft0, bad], [])
    write_run(tmp_path / "other_budget", tasks, 50, forgetful, 3)  # complete, but 50 steps per task
    with pytest.raises(ValueError, match="other_budget differs from .*ft0"):
        method_metrics("finetune", [ft0, load_sequence_run(tmp_path / "other_budget")], [])
    references = [load_sequence_run(tmp_path / name) for name in ("ref-full", "ref-short")]
    assert [len(r) for r in reference_aucs(tasks, 100, references)] == [0, 1]  # only the finished reference counts
    assert all(math.isnan(v) for v in mean_ci(np.array([0.5, np.nan, 0.4])))


def test_report_refuses_a_directory_without_runs_in_one_line(tmp_path, capsys):
    assert main([str(tmp_path)], ContinualReportSpec("CW test")) == 2
    assert capsys.readouterr().err.count("\n") == 1
