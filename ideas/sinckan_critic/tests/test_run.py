"""The study's entry point as a user runs it: bad input fails in one line, and a SIGKILLed Sinc run resumes with its
normaliser exactly where it was."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.config import ConfigError
from ideas.sinckan_critic.agent import SincKANConfig
from ideas.sinckan_critic.run import validate

ROOT = Path(__file__).resolve().parents[3]
MODULE = "ideas.sinckan_critic.run"
# action repeat 4: 250-step episodes, so a checkpoint (taken at an episode end) falls at step 250, after 150 updates
TINY = ["task=pendulum-swingup", "action_repeat=4", "steps=1000", "warmup_steps=100", "eval_every=500",
        "eval_episodes=1", "log_every=250", "checkpoint_every=250", "hidden=32", "batch_size=64", "torch_threads=1",
        "wandb.mode=disabled", "progress=false"]


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, MUJOCO_GL="disable", WANDB_SILENT="true")
    return subprocess.run([sys.executable, "-m", MODULE, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def eval_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "eval.csv") as f:
        return [{k: v for k, v in row.items() if k != "wall_s"} for row in csv.DictReader(f)]


def test_bad_first_layer_fails_in_one_line_and_writes_nothing(tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "eval.csv").write_text("keep me")
    out = run("first_layer=sincc", f"hydra.run.dir={existing}", timeout=60)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "valid choices: linear, linear_matched, fourier, sinc, pykan" in lines[0]
    assert [p.name for p in existing.iterdir()] == ["eval.csv"] and (existing / "eval.csv").read_text() == "keep me"
    fresh = tmp_path / "fresh"
    assert run("first_layer=sincc", f"hydra.run.dir={fresh}", timeout=60).returncode == 2
    assert not fresh.exists()


@pytest.mark.parametrize("change, expected", [
    (dict(first_layer="kan"), "unknown first_layer 'kan'"),
    (dict(sinc_degree=-2), "sinc_degree must be >= 0"),
    (dict(sinc_init_h=0.0), "sinc_init_h must be > 0"),
])
def test_bad_layer_settings_are_one_line(change, expected):
    with pytest.raises(ConfigError) as err:
        validate(SincKANConfig(**change))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_sigkill_then_resume_keeps_the_normaliser(tmp_path):
    common = [*TINY, "first_layer=sinc"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    out = run(*common, f"hydra.run.dir={straight}")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((straight / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["critic_params"] > summary["first_layer_params"] > 0
    train = list(csv.DictReader(open(straight / "train.csv")))
    assert {"train/outside_sinc", "train/outside_fourier", "train/outside_pykan"} <= set(train[-1])

    env = dict(os.environ, MUJOCO_GL="disable")
    proc = subprocess.Popen([sys.executable, "-m", MODULE, *common, f"hydra.run.dir={killed}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (killed / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)  # run on past the checkpoint, so what follows it must be redone after the resume
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    checkpoint = torch.load(killed / "checkpoint.pt", weights_only=False)
    assert 0 < checkpoint["agent"]["obs_norm"]["count"] < summary["updates"] * 64  # killed mid-run, stats non-trivial

    resumed = run(*common, f"hydra.run.dir={killed}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((killed / "summary.json").read_text())["resumed"] is True
    assert eval_rows(killed) == eval_rows(straight)
    final = [torch.load(d / "checkpoint.pt", weights_only=False)["agent"]["obs_norm"] for d in (straight, killed)]
    assert final[0]["count"] == summary["updates"] * 64
    for name, value in final[0].items():
        assert torch.equal(value, final[1][name]), name


@pytest.mark.slow
def test_quick_sweep_then_report_with_learned_functions(tmp_path):
    sweep = tmp_path / "sweep"
    out = run("-m", "+sweep=quick", "hydra/launcher=local", "hydra.launcher.n_jobs=2", "first_layer=sinc,pykan",
              "seed=0", "action_repeat=4", "steps=300", "warmup_steps=100", "eval_every=150", "progress=false",
              f"hydra.sweep.dir={sweep}")
    assert out.returncode == 0, out.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]
    assert sorted(s["config"]["first_layer"] for s in summaries) == ["pykan", "sinc"]
    assert all(s["status"] == "complete" and s["config"]["hidden"] == 64 for s in summaries)  # the preset applied
    report = subprocess.run([sys.executable, "-m", "ideas.sinckan_critic.report", str(sweep)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    text = (sweep / "report.md").read_text()
    assert "critic params" in text and "## Learned first-layer functions" in text
    assert (sweep / "first_layer_pendulum-swingup.png").stat().st_size > 20_000
