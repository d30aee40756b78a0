"""The real entry points, run as a user would (subprocess, real physics, tiny networks and budgets)."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# action repeat 4: 250-step episodes, so evaluations and checkpoints (taken at episode ends) come 4x sooner
TINY = ["steps=1000", "action_repeat=4", "warmup_steps=250", "eval_every=500", "eval_episodes=1", "log_every=250",
        "checkpoint_every=250", "hidden=32", "batch_size=64", "torch_threads=1"]


def run(module: str, *overrides: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, MUJOCO_GL="disable", WANDB_SILENT="true")
    return subprocess.run([sys.executable, "-m", module, *overrides], cwd=kwargs.pop("cwd", ROOT), env=env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def eval_rows(run_dir: Path) -> list[dict]:
    """eval.csv without wall_s (wall-clock time legitimately differs between an interrupted run and another)."""
    with open(run_dir / "eval.csv") as f:
        return [{k: v for k, v in row.items() if k != "wall_s"} for row in csv.DictReader(f)]


def test_sac_run_writes_design_files_and_wandb_offline(tmp_path):
    out = run("core.run", "task=cartpole-swingup", *TINY, "wandb.mode=offline", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["step"] == 1000
    assert summary["env_steps_per_s"] > 0 and summary["wall_s"] > 0 and summary["final_return"] >= 0
    rows = list(csv.DictReader(open(tmp_path / "eval.csv")))
    assert [(int(r["step"]), int(r["frame"])) for r in rows] == [(0, 0), (500, 2000), (1000, 4000)]  # frames = 4 x
    train = list(csv.DictReader(open(tmp_path / "train.csv")))
    assert {"step", "frame", "train/critic_loss", "time/env_steps_per_s"} <= set(train[-1])
    assert (tmp_path / ".hydra" / "config.yaml").exists() and (tmp_path / "checkpoint.pt").exists()
    offline = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb")), "a real wandb offline run file"
    assert summary["device"] == ("cuda" if torch.cuda.is_available() else "cpu") and summary["torch_threads"] == 1
    # a complete run is not trained again, even from its committed record alone (a clean clone of the benchmarks has no
    # checkpoint or replay), and relaunching it (here with 2 threads) keeps the record of its machine
    (tmp_path / "checkpoint.pt").unlink()
    shutil.rmtree(tmp_path / "replay", ignore_errors=True)
    curve = (tmp_path / "eval.csv").read_text()
    two_threads = [o for o in TINY if not o.startswith("torch_threads=")] + ["torch_threads=2"]
    again = run("core.run", "task=cartpole-swingup", *two_threads, "wandb.mode=disabled",
                f"hydra.run.dir={tmp_path}")
    assert again.returncode == 0, again.stderr[-3000:]
    kept = json.loads((tmp_path / "summary.json").read_text())
    assert kept["wall_s"] == summary["wall_s"] and kept["torch_threads"] == 1
    assert (tmp_path / "eval.csv").read_text() == curve and not (tmp_path / "checkpoint.pt").exists()
    # the same directory with other settings is refused, not resumed or overwritten
    config = (tmp_path / ".hydra" / "config.yaml").read_text()
    other = run("core.run", "task=cartpole-swingup", *TINY, "gamma=0.9", "wandb.mode=disabled",
                f"hydra.run.dir={tmp_path}")
    assert other.returncode == 2 and "gamma" in other.stderr and len(other.stderr.strip().splitlines()) == 1
    assert (tmp_path / ".hydra" / "config.yaml").read_text() == config


# one subprocess case per entry point: the exit code, the one line and "nothing written" as a user sees them (the
# validation itself is tested in-process in test_config.py)
@pytest.mark.parametrize(
    "module, override, expected",
    [
        ("core.run", "steps=abc", "steps must be int, got 'abc'"),
        ("core.run", "task=dog-flyy", "close matches: dog-walk"),
        ("ideas.ode_solvers.run", "solver=rk5", "euler, midpoint, heun2, heun3, rk4"),
    ],
)
def test_bad_config_fails_fast_with_one_line_and_writes_nothing(tmp_path, module, override, expected):
    run_dir = tmp_path / "existing"
    run_dir.mkdir()
    (run_dir / "eval.csv").write_text("keep me")
    start = time.perf_counter()
    out = run(module, override, f"hydra.run.dir={run_dir}", timeout=60)
    assert time.perf_counter() - start < 30  # loose: Hydra's start-up alone takes seconds on a loaded 2-core runner
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], out.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["eval.csv"] and (run_dir / "eval.csv").read_text() == "keep me"
    fresh = tmp_path / "fresh"
    run(module, override, f"hydra.run.dir={fresh}", timeout=60)
    assert not fresh.exists()


def test_run_directory_written_before_the_engine_redesign_resumes_and_completes(tmp_path):
    """A run directory as the code before the redesign left it: its summary.json config lacks a field the schema
    gained, its summary lacks newer keys, and its checkpoint holds the replay arrays inline (no replay chunks)."""
    common = ["task=cartpole-swingup", *TINY, "wandb.mode=disabled", f"hydra.run.dir={tmp_path}"]
    assert run("core.run", *common, "steps=500").returncode == 0
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    chunks = [torch.load(p) for p in sorted((tmp_path / "replay").glob("*.pt"))]
    arrays = {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}  # arrival order = slot order (no wrap)
    state["buffer"] = dict(arrays=arrays, ptr=state["buffer"]["ptr"], size=state["buffer"]["size"])
    torch.save(state, tmp_path / "checkpoint.pt")
    shutil.rmtree(tmp_path / "replay")
    summary = json.loads((tmp_path / "summary.json").read_text())
    del summary["config"]["target_entropy_scale"]  # as written by code that did not have this field yet
    for key in ("updates_per_s", "episodes", "updates", "resumed"):
        summary.pop(key)
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    out = run("core.run", *common, "steps=1000")  # a longer budget: resume from the step-500 checkpoint
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["resumed"] is True and summary["step"] == 1000
    assert [int(r["step"]) for r in csv.DictReader(open(tmp_path / "eval.csv"))] == [0, 500, 1000]


def kill_when(run_dir: Path, overrides: list[str], ready, settle: float = 0.0) -> None:
    """Start core.run in run_dir and SIGKILL it once ready() holds (and `settle` s later), while it still runs."""
    env = dict(os.environ, MUJOCO_GL="disable")
    proc = subprocess.Popen([sys.executable, "-m", "core.run", *overrides, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not ready() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(settle)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def assert_same_rows(killed: Path, straight: Path) -> None:
    """The re-run's eval.csv equals the uninterrupted run's, and no training row is lost or doubled."""
    assert eval_rows(killed) == eval_rows(straight)
    steps = [int(r["step"]) for r in csv.DictReader(open(killed / "train.csv"))]
    assert steps == [int(r["step"]) for r in csv.DictReader(open(straight / "train.csv"))]


def test_sigkill_then_resume_gives_the_same_eval_csv(tmp_path):
    # a 300-transition ring: it has wrapped by the kill, so the resume restores it from several replay chunks
    common = ["task=cartpole-swingup", *TINY, "steps=1500", "buffer_size=300", "wandb.mode=disabled"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert run("core.run", *common, f"hydra.run.dir={straight}").returncode == 0
    # two replay chunks: past the second checkpoint (step 500), the ring has wrapped; then run on past it, so rows
    # after the checkpoint must be rewound
    kill_when(killed, common, lambda: len(list((killed / "replay").glob("*.pt"))) >= 2, settle=0.5)
    assert json.loads((killed / "summary.json").read_text())["status"] == "running"

    resumed = run("core.run", *common, f"hydra.run.dir={killed}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["resumed"] is True and summary["status"] == "complete"
    assert_same_rows(killed, straight)


def test_a_run_killed_before_its_first_checkpoint_starts_over_without_doubled_rows(tmp_path):
    common = ["task=cartpole-swingup", *TINY, "steps=750", "checkpoint_every=100000", "wandb.mode=disabled"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert run("core.run", *common, f"hydra.run.dir={straight}").returncode == 0
    # evaluations at steps 0 and 500 logged, no checkpoint yet (the first would be at 100k)
    kill_when(killed, common, lambda: (killed / "eval.csv").exists() and len(eval_rows(killed)) >= 2)
    assert not (killed / "checkpoint.pt").exists()

    assert run("core.run", *common, f"hydra.run.dir={killed}").returncode == 0
    assert json.loads((killed / "summary.json").read_text())["resumed"] is False
    assert_same_rows(killed, straight)  # eval steps 0, 500, 750 once each, as uninterrupted


@pytest.mark.slow
def test_joblib_multirun_two_jobs(tmp_path):
    out = run("core.run", "-m", "hydra/launcher=local", "hydra.launcher.n_jobs=2", "seed=0,1", *TINY, "steps=500",
              "wandb.mode=disabled", f"hydra.sweep.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    runs = sorted(p.parent for p in tmp_path.glob("*/summary.json"))
    assert len(runs) == 2 and ["seed=0" in p.name for p in runs] == [True, False]  # dir = the job's overrides
    for run_dir in runs:
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "complete"
    # a sweep re-run fills in only what is missing: delete one run and run the sweep again
    walls = {p: json.loads((p / "summary.json").read_text())["wall_s"] for p in runs}
    shutil.rmtree(runs[0])
    out = run("core.run", "-m", "hydra/launcher=local", "hydra.launcher.n_jobs=2", "seed=0,1", *TINY, "steps=500",
              "wandb.mode=disabled", f"hydra.sweep.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((runs[1] / "summary.json").read_text())["wall_s"] == walls[runs[1]]  # untouched
    assert json.loads((runs[0] / "summary.json").read_text())["status"] == "complete"  # redone


@pytest.mark.slow
def test_submitit_local_multirun(tmp_path):
    out = run("core.run", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "seed=0,1",
              *TINY, "steps=500", "wandb.mode=disabled", f"hydra.sweep.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    summaries = list(tmp_path.glob("*/summary.json"))
    assert len(summaries) == 2
    assert all(json.loads(p.read_text())["status"] == "complete" for p in summaries)
