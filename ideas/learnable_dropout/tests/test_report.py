"""The study's report on constructed runs (no training): each arm against the best baseline of each metric with the
hand-computed differences and exact p-values, the overlap of the units each task keeps, and the rates each task's
training started from."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import yaml

from core.analysis.continual import SequenceRun
from ideas.learnable_dropout.report import (
    baseline_tests,
    control_tests,
    difference_coverage,
    kept_overlap,
    per_run_metrics,
    start_rates,
    write_study,
)

STEPS = np.arange(2, 21, 2)  # two tasks of 10 steps, five evaluations in each window


def run(arm: str, task0: list[float], task1: list[float], seed: int = 0) -> SequenceRun:
    method, dropout, scope = arm.split("/")
    config = {"method": method, "dropout": dropout, "dropout_scope": scope}
    return SequenceRun(Path(arm), config, "two@10", ["mw-a", "mw-b"], 10, seed, "complete", STEPS,
                       np.array([task0, task1], dtype=float).T, np.zeros((10, 2)))


def reference(task: str) -> SequenceRun:
    return SequenceRun(Path(task), {"method": "finetune", "dropout": "none"}, f"{task}@10", [task], 10, 0, "complete",
                       STEPS[:5], np.full((5, 1), 0.5), np.zeros((5, 1)))


def test_every_arm_is_tested_against_the_best_baseline_of_each_metric():
    curves = {"finetune/none/per_task": ([1] * 5 + [0] * 5, [0] * 5 + [1] * 5),  # P 0.5, F 0.5, FT 1
              "gpm/none/per_task": ([1] * 5 + [0.5] * 5, [0] * 5 + [1] * 5),  # P 0.75, F 0.25, FT 1
              "gpm+replay/learned_prior/per_task": ([1] * 10, [0] * 5 + [0.8] * 5)}  # P 0.9, F 0, FT (1 + 0.6) / 2
    groups = {arm: [run(arm, *c, seed=s) for s in range(3)] for arm, c in curves.items()}
    references = [reference("mw-a"), reference("mw-b")]
    values = per_run_metrics(groups["gpm+replay/learned_prior/per_task"], references)
    assert np.allclose(values["P"], 0.9) and np.allclose(values["F"], 0.0) and np.allclose(values["FT"], 0.8)
    text = "\n".join(baseline_tests(groups, references))
    # 3 identical runs against 3: complete separation, exact two-sided p = 2 / C(6, 3) = 0.1; Holm over two arms 0.2
    assert "**P** against the best baseline, **gpm/none/per_task** (n=3, mean 0.75" in text
    best_p = "| gpm+replay/learned_prior/per_task | gpm/none/per_task | 3 / 3 | +0.15 [+0.15, +0.15] | 0.100 | 0.200 |"
    assert best_p + " 0.200 |" in text
    assert "**F** against the best baseline, **gpm/none/per_task** (n=3, mean 0.25; lower is better)" in text
    assert "| gpm+replay/learned_prior/per_task | gpm/none/per_task | 3 / 3 | -0.25 [-0.25, -0.25] |" in text
    assert "**FT** against the best baseline, **finetune/none/per_task** (n=3, mean 1.00" in text
    assert "| gpm+replay/learned_prior/per_task | finetune/none/per_task | 3 / 3 | -0.20 [-0.20, -0.20] |" in text
    # two tests at 3 against 3 can never reach 0.05 (Holm floor 0.2); 5 runs per arm could (2 x 2 / C(10, 5) < 0.05)
    assert text.count("No row can reach p < 0.05 with these run counts (smallest attainable Holm p 0.20)") == 3
    assert "; 5 runs per arm would make it possible." in text


def test_learned_rates_are_tested_against_fixed_rates_and_no_dropout_of_the_same_method():
    curves = {"gpm+replay/learned_prior/per_task": ([1] * 10, [0] * 5 + [0.8] * 5),  # P 0.9
              "gpm+replay/heterogeneous/per_task": ([1] * 10, [0] * 5 + [0.6] * 5),  # P 0.8
              "gpm+replay/none/per_task": ([1] * 10, [0] * 5 + [0.4] * 5),  # P 0.7
              "gpm/heterogeneous/per_task": ([1] * 10, [0] * 10)}  # another method: not a control
    groups = {arm: [run(arm, *c, seed=s) for s in range(3)] for arm, c in curves.items()}
    text = "\n".join(control_tests(groups, [reference("mw-a"), reference("mw-b")]))
    learned = "| gpm+replay/learned_prior/per_task"
    assert f"{learned} | gpm+replay/heterogeneous/per_task | 3 / 3 | +0.10 [+0.10, +0.10] | 0.100 | 0.200 |" in text
    assert f"{learned} | gpm+replay/none/per_task | 3 / 3 | +0.20 [+0.20, +0.20] | 0.100 | 0.200 |" in text
    assert "gpm/heterogeneous/per_task |" not in text
    assert control_tests({k: v for k, v in groups.items() if "learned" not in k}, []) == []  # nothing learned


def test_few_runs_make_the_bootstrap_intervals_undercover():
    assert 0.6 < difference_coverage(3, 3) < 0.85 < difference_coverage(20, 20)  # nominal 0.90


def test_the_kept_units_overlap_is_the_jaccard_of_each_tasks_lowest_rates():
    rates = np.array([[0.1, 0.2, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9],  # keeps units 0, 1 (a quarter of 8)
                      [0.9, 0.1, 0.2, 0.9, 0.9, 0.9, 0.9, 0.9],  # keeps 1, 2
                      [0.5] * 8])  # equal rates single out nothing
    overlap = kept_overlap(rates)
    assert overlap[0, 0] == 1.0 and math.isclose(overlap[0, 1], 1 / 3) and overlap[1, 0] == overlap[0, 1]
    assert np.isnan(overlap[2]).all() and np.isnan(overlap[:, 2]).all()


def test_each_tasks_starting_rates_are_its_initialisation():
    rates = np.array([[0.2, 0.3], [0.4, 0.5], [0.6, 0.7]])  # (tasks, units) at each task's end
    usage = np.array([[1.0, 0.0], [1.0, 3.0], [9.0, 9.0]])

    def arm(dropout: str, scope: str = "per_task") -> SequenceRun:
        config = {"dropout": dropout, "dropout_scope": scope, "dropout_init": 0.1, "dropout_alpha": 2.0}
        return SequenceRun(Path(dropout), config, "three@10", ["a", "b", "c"], 10, 0, "complete")

    assert np.allclose(start_rates(arm("concrete"), rates, usage), 0.1)
    assert np.allclose(start_rates(arm("concrete", "shared"), rates, usage), [[0.1, 0.1], [0.2, 0.3], [0.4, 0.5]])
    # learned_prior: task 0 from 0.1; task 1 from task 0's usage (1, 0); task 2 from the sum (2, 3)
    keep = [[1.0, 1.0], [math.exp(-2.0), 1.0], [math.exp(-2.0 * 2 / 3), math.exp(-2.0)]]
    assert np.allclose(start_rates(arm("learned_prior"), rates, usage), 1 - 0.9 * np.array(keep))
    assert start_rates(arm("heterogeneous"), rates, usage) is None  # fixed rates: nothing learned


def test_runs_without_dropout_get_no_rates_section_and_gpm_runs_their_bases(tmp_path):
    dirs = []
    for method, seed in [("finetune", 0), ("gpm", 0), ("gpm", 1)]:
        run_dir = tmp_path / f"{method}{seed}"
        (run_dir / ".hydra").mkdir(parents=True)
        config = dict(task="mw-a+mw-b@10", sequence="mw-a+mw-b", steps_per_task=10, seed=seed, method=method,
                      dropout="none", dropout_scope="per_task", hidden=16)
        (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        with open(run_dir / "eval.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, ["step", "return", "task_index", "task", "success"])
            writer.writeheader()
            for step in (10, 20):
                for i, task in enumerate(["mw-a", "mw-b"]):
                    writer.writerow({"step": step, "return": 1.0, "task_index": i, "task": task, "success": 1.0})
        sizes = {"gpm_basis_sizes": [seed + 1, 3]} if method == "gpm" else {}
        (run_dir / "summary.json").write_text(json.dumps(dict(status="complete", **sizes)))
        dirs.append(run_dir)
    text = write_study(dirs, tmp_path / "report").read_text()
    assert "## The rates" not in text  # no run has dropout
    assert "- gpm/none/per_task: seed 0: [1, 3] / seed 1: [2, 3] (layer inputs: the observation, then 16 units" in text
    assert "finetune/none/per_task: seed" not in text  # no bases without GPM
