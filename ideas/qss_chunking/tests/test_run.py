"""The entry point as a user runs it (two subprocesses: a refused config, a few hundred real steps of qss with the
GRU decoder), the report on that run, and the sweeps' arms composed through Hydra as the launcher would."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import ideas.qss_chunking.run  # noqa: F401  (registers the schema the configs compose with)
from core.config import freeze
from ideas.qss_chunking.config import ChunkingConfig, validate
from ideas.qss_chunking.report import reach_curve, report

ROOT = Path(__file__).resolve().parents[3]
CONF = ROOT / "ideas" / "qss_chunking" / "conf"
MODULE = "ideas.qss_chunking.run"
TINY = ["agent=qss", "horizon=3", "decoder=gru", "task=cheetah-run", "action_repeat=4", "steps=160",
        "warmup_steps=80", "eval_every=160", "eval_episodes=1", "log_every=50", "checkpoint_every=200", "hidden=32",
        "latent=32", "batch_size=32", "torch_threads=1", "wandb.mode=disabled", "progress=false"]


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, MUJOCO_GL="disable", WANDB_SILENT="true")
    return subprocess.run([sys.executable, "-m", MODULE, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_a_control_reward_task_is_refused_in_one_line_and_nothing_is_written(tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "eval.csv").write_text("keep me")
    out = run("agent=qss", "horizon=3", "task=cartpole-swingup", f"hydra.run.dir={existing}", timeout=120)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "cartpole-swingup rewards small controls; suitable tasks: cheetah-run" in lines[0]
    assert [p.name for p in existing.iterdir()] == ["eval.csv"] and (existing / "eval.csv").read_text() == "keep me"


def test_a_short_qss_gru_run_logs_its_diagnostics_and_reports_them(tmp_path):
    run_dir = tmp_path / "run"
    out = run(*TINY, f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["updates"] == 80
    keys = ["decoder_error_step1", "decoder_error_step2", "decoder_error_step3", "forward_loss", "inverse_loss",
            "reach_error", "reach_error_eval"]
    assert all(summary[k] > 0 for k in keys), summary
    assert "decoder_error_step4" not in summary
    rows = list(csv.DictReader(open(run_dir / "train.csv")))
    assert {f"train/{k}" for k in keys} <= set(rows[-1]) and float(rows[-1]["train/reach_error_eval"]) > 0
    frames, reach = reach_curve(run_dir)  # each evaluation's value at its own frame, the last one from summary.json
    eval_frames = [float(r["frame"]) for r in csv.DictReader(open(run_dir / "eval.csv"))]
    assert len(frames) >= 2 and set(frames) <= set(eval_frames) and frames[-1] == eval_frames[-1]
    assert reach[-1] == pytest.approx(summary["reach_error_eval"])

    out_dir = tmp_path / "report"
    assert report([str(run_dir), "--out", str(out_dir)]) == 0
    text = (out_dir / "report.md").read_text()
    assert "## Inverse decoder, forward model and reach error against the horizon" in text
    assert "reach error (eval)" in text and (out_dir / "diagnostics.png").stat().st_size > 20_000


@pytest.mark.parametrize("sweep", ["quick", "grid"])
def test_every_arm_of_the_sweeps_composes_to_a_valid_config(sweep):
    with initialize_config_dir(version_base=None, config_dir=str(CONF)):
        params = compose("config", overrides=[f"+sweep={sweep}"], return_hydra_config=True).hydra.sweeper.params
        arms, tasks = params["+arm"].split(","), params.get("task", "finger-spin").split(",")
        if sweep == "grid":
            assert sorted(arms) == sorted(p.stem for p in (CONF / "arm").glob("*.yaml"))
        seen = set()
        for arm in arms:
            cfg = compose("config", overrides=[f"+sweep={sweep}", f"+arm={arm}"])
            frozen = freeze(OmegaConf.create(OmegaConf.to_container(cfg)), ChunkingConfig)
            for task in tasks:
                frozen.task = task
                validate(frozen)
            seen.add((frozen.agent, frozen.horizon, frozen.decoder))
        assert len(seen) == len(arms)  # no two arms are the same experiment
