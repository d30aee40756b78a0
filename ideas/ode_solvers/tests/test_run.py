"""The study's entry points end to end: one run with a non-default solver and path, then a small sweep + report."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# action repeat 4: 250-step episodes, so evaluations cost a quarter of the suite's time they would at repeat 1
TINY = ["task=cartpole-swingup", "action_repeat=4", "warmup_steps=250", "eval_every=500", "eval_episodes=1",
        "log_every=250", "hidden=32", "batch_size=64", "torch_threads=1", "wandb.mode=disabled"]


def run(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    env = dict(os.environ, MUJOCO_GL="disable")
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_rk4_plv_run_completes_with_speed_and_nfe(tmp_path):
    out = run("ideas.ode_solvers.run", "solver=rk4", "path=plv", "flow_steps=2", *TINY, "steps=1000",
              f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["solver"] == "rk4" and summary["path"] == "plv"
    assert summary["nfe_per_action"] == 8  # 2 rk4 steps x 4 evaluations
    assert summary["env_steps_per_s"] > 0 and summary["updates_per_s"] > 0 and summary["sampler_ms_per_batch"] > 0
    train = list(csv.DictReader(open(tmp_path / "train.csv")))
    assert {"train/policy_loss", "train/critic_loss", "perf/sampler_ms", "perf/nfe_per_action",
            "time/env_steps_per_s", "time/updates_per_s"} <= set(train[-1])
    assert [int(r["step"]) for r in csv.DictReader(open(tmp_path / "eval.csv"))] == [0, 500, 1000]
    config = (tmp_path / ".hydra" / "config.yaml").read_text()
    assert "solver: rk4" in config and "path: plv" in config


def test_adams_at_two_steps_is_flagged_as_rk4(tmp_path):
    out = run("ideas.ode_solvers.run", "solver=implicit_adams", "flow_steps=2", *TINY, "steps=0",
              f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "rk4" in out.stdout and "warning" in out.stdout


@pytest.mark.slow
def test_sweep_then_report(tmp_path):
    sweep = tmp_path / "sweep"
    out = run("ideas.ode_solvers.run", "-m", "hydra/launcher=local", "hydra.launcher.n_jobs=2", "solver=midpoint,rk4",
              "seed=0,1", *TINY, "steps=500", f"hydra.sweep.dir={sweep}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(list(sweep.glob("*/summary.json"))) == 4
    out = run("ideas.ode_solvers.report", str(sweep))
    assert out.returncode == 0, out.stderr[-3000:]
    report = (sweep / "report.md").read_text()
    assert "midpoint" in report and "rk4" in report
    assert (sweep / "curves_cartpole-swingup.png").stat().st_size > 10_000
    rows = list(csv.DictReader(open(sweep / "stats.csv")))
    assert {r["metric"] for r in rows} == {"auc", "final_return", "auc_wall", "auc_compute"}
