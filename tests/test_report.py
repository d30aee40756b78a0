"""The report CLI end to end on a fake sweep written in the run-directory file format."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TASKS = ["cartpole-swingup", "dog-run"]
GROUPS = [("midpoint", "linear"), ("rk4", "plv")]
SEEDS = [0, 1, 2]
ACTION_REPEAT = 2
STEPS = [0, 2500, 5000, 10000]  # uneven spacing on purpose


def eval_steps(task, solver, seed):
    # one run evaluates more often: the group's curves must be put on one grid
    return [0, 2500, 5000, 7500, 10000] if (task, solver, seed) == ("dog-run", "rk4", 2) else STEPS


def eval_return(task, solver, seed, step):
    base = (100.0 if solver == "midpoint" else 400.0) + (50.0 if task == "dog-run" else 0.0)
    return base * step / 10000 + 10.0 * seed + (7.0 if seed == 1 else 0.0)


def write_run(run_dir, config, eval_rows=None, summary=None, train_rows=None):
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    if eval_rows is not None:
        with (run_dir / "eval.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "frame", "return", "return_std", "episodes", "wall_s"])
            for step, ret in eval_rows:
                writer.writerow([step, step * ACTION_REPEAT, ret, 1.0, 10, step / 100])
    if train_rows is not None:
        with (run_dir / "train.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "frame", "train/critic_loss", "time/env_steps_per_s", "perf/nfe_per_action"])
            writer.writerows(train_rows)
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))


def config(task, solver, path, seed):
    return {"idea": "ode_solvers", "task": task, "seed": seed, "steps": 10000, "action_repeat": ACTION_REPEAT,
            "solver": solver, "path": path, "flow_steps": 2}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    (root / "multirun.yaml").write_text("hydra: {}\n")
    index = 0
    for task in TASKS:
        for solver, path in GROUPS:
            for seed in SEEDS:
                rows = [(s, eval_return(task, solver, seed, s)) for s in eval_steps(task, solver, seed)]
                speed = (1000.0 if solver == "midpoint" else 600.0) + seed
                nfe = 2.0 if solver == "midpoint" else 4.0
                summary = {"status": "complete", "final_return": rows[-1][1], "env_steps_per_s": speed,
                           "updates_per_s": 50.0, "wall_s": 100.0, "step": 10000, "steps": 10000}
                if seed != 0:  # seed 0 leaves NFE to train.csv, as an idea that logs it only there would
                    summary["nfe_per_action"] = nfe
                write_run(root / str(index), config(task, solver, path, seed), rows, summary,
                          train_rows=[[5000, 10000, 1.5, speed, nfe], [10000, 20000, 1.2, speed, nfe]])
                index += 1
    write_run(root / str(index), config("dog-run", "rk4", "plv", 3), [(0, 5.0), (2500, 50.0)],
              {"status": "failed", "final_return": None, "error": "CUDA out of memory", "step": 2600})
    write_run(root / str(index + 1), config("dog-run", "midpoint", "linear", 3))
    return root


def run_cli(*args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "ideas.ode_solvers.report", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def report(sweep):
    result = run_cli(sweep)
    assert result.returncode == 0, result.stderr
    return sweep


def read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_report_lists_failed_and_missing_runs(report):
    text = (report / "report.md").read_text()
    section = text.split("## Missing or failed runs", 1)[1].split("\n## ", 1)[0]
    assert "`12`" in section and "CUDA out of memory" in section and "failed" in section
    assert "`13`" in section and "no summary.json" in section
    assert "ODE solvers" in text.splitlines()[0]
    assert "Read 14 run directories" in text and "12 complete runs" in text
    assert "flow_steps = 2" in text  # constant key reported, left out of the labels
    assert "Reference group for the probability of improvement: `midpoint/linear`" in text
    for name in ["curves_cartpole-swingup.png", "curves_dog-run.png", "speed.png", "final_auc.png"]:
        assert f"]({name})" in text


def test_runs_csv_has_every_directory(report):
    rows = read_csv(report / "runs.csv")
    assert len(rows) == 14
    assert list(rows[0]) == ["dir", "task", "group", "seed", "status", "final_return", "auc", "env_steps_per_s",
                             "nfe", "reason"]
    status = {r["dir"]: r["status"] for r in rows}
    assert status["12"] == "failed" and status["13"] == "missing"
    assert sum(s == "complete" for s in status.values()) == 12
    assert {r["nfe"] for r in rows if r["group"] == "rk4/plv" and r["status"] == "complete"} == {"4.0"}


def test_stats_csv_rows_and_holm(report):
    rows = read_csv(report / "stats.csv")
    keys = {(r["task"], r["group_a"], r["group_b"], r["metric"]) for r in rows}
    assert keys == {(t, "midpoint/linear", "rk4/plv", m) for t in TASKS for m in ("auc", "final_return")}
    assert len(rows) == 4
    for r in rows:
        assert float(r["p_holm"]) >= float(r["p"])
        assert float(r["U"]) == 0.0  # every rk4/plv seed beats every midpoint/linear seed
        assert float(r["p"]) == pytest.approx(0.1)  # exact two-sided p for 3 vs 3 seeds, fully separated
        assert r["significant"] == "False"


def test_groups_csv_matches_hand_computation(report):
    task, seeds = "dog-run", SEEDS
    finals = np.array([eval_return(task, "rk4", s, 10000) for s in seeds])
    aucs = []
    for s in seeds:
        frames = np.array(eval_steps(task, "rk4", s), dtype=float) * ACTION_REPEAT
        rets = np.array([eval_return(task, "rk4", s, st) for st in eval_steps(task, "rk4", s)])
        area = sum((frames[i + 1] - frames[i]) * (rets[i + 1] + rets[i]) / 2 for i in range(len(frames) - 1))
        aucs.append(area / (frames[-1] - frames[0]))
    row = next(r for r in read_csv(report / "groups.csv") if r["task"] == task and r["group"] == "rk4/plv")
    assert int(row["n"]) == 3
    assert float(row["final_mean"]) == pytest.approx(finals.mean())
    assert float(row["final_std"]) == pytest.approx(finals.std(ddof=1))
    assert float(row["auc_mean"]) == pytest.approx(np.mean(aucs))
    assert float(row["iqm"]) == pytest.approx(finals.mean())  # 3 seeds: trim_mean(0.25) trims nothing
    assert float(row["env_steps_per_s"]) == pytest.approx(601.0)
    assert float(row["nfe"]) == pytest.approx(4.0)


def test_aggregate_csv(report):
    rows = read_csv(report / "aggregate.csv")
    poi = [r for r in rows if r["statistic"] == "probability_of_improvement"]
    assert {(r["group"], r["metric"]) for r in poi} == {("rk4/plv", "auc"), ("rk4/plv", "final_return")}
    for r in poi:
        assert float(r["point"]) == 1.0 and int(r["tasks"]) == 2
    for r in rows:
        assert float(r["lo"]) <= float(r["point"]) <= float(r["hi"])


def test_figures_are_valid_pngs(report):
    from matplotlib import image

    for name in ["curves_cartpole-swingup.png", "curves_dog-run.png", "speed.png", "final_auc.png"]:
        path = report / name
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
        pixels = image.imread(path)
        assert pixels.ndim == 3 and pixels.shape[0] > 300 and pixels.shape[1] > 500
        assert pixels[..., :3].std() > 0.05  # not a blank canvas


def test_out_option_and_several_inputs(sweep, tmp_path):
    out = tmp_path / "out"
    result = run_cli(sweep / "0", sweep / "6", "--out", out)
    assert result.returncode == 0, result.stderr
    rows = read_csv(out / "runs.csv")
    assert {r["task"] for r in rows} == {"cartpole-swingup", "dog-run"} and len(rows) == 2
    assert (out / "report.md").is_file()


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_bad_directory_exits_2_and_writes_nothing(tmp_path, make):
    target = tmp_path / "nope"
    if make == "empty":
        target.mkdir()
        (target / "notes.txt").write_text("no runs here")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = run_cli(target, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert str(target) in result.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_entry_point_does_not_import_torch():
    code = "import sys, ideas.ode_solvers.report; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr


def test_only_failed_runs_still_reports_them(tmp_path):
    write_run(tmp_path / "0", config("dog-run", "rk4", "plv", 0), [(0, 1.0)], {"status": "failed"})
    result = run_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "report.md").read_text()
    assert "No complete run" in text and "| `0` | dog-run | rk4/plv/2 | 0 | failed |" in text
    assert not list(tmp_path.glob("*.png"))
