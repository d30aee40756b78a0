"""The task-sequence trainer (core.continual) on real Meta-World tasks, tiny networks and budgets.

One straight run of the two-task `pair` sequence (300 steps per task, so each task's second episode is cut at 100
steps by the switch) is made in-process with an agent that records what it sees at its task hooks; the other tests
compare against it: a run of the real entry point killed with SIGKILL just after its checkpoint at the switch, then
resumed, and a resume from a copy of the straight run's directory taken in the last task's end hook.
"""

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

from core.analysis.continual import load_sequence_run
from core.buffers import Batch
from core.config import ConfigError, WandbConfig
from core.continual import (
    ContinualSACConfig,
    make_trainer,
    reset_optimizers,
    sequence_name,
    sequence_tasks,
    validate_sequence,
)
from core.sac import SAC
from tests.mw_envs import built

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(sequence="pair", steps_per_task=300, warmup_steps=100, update_after=150, update_every=50, eval_every=300,
            eval_episodes=1, eval_deterministic_episodes=1, hidden=32, depth=1, batch_size=32, log_every=50,
            checkpoint_every=100, torch_threads=1, seed=0)


def tiny_config(**changes) -> ContinualSACConfig:
    cfg = ContinualSACConfig(**(TINY | changes), wandb=WandbConfig(mode="disabled"))
    validate_sequence(cfg)
    return cfg


def rows(path: Path) -> list[dict]:
    """A CSV's rows without wall-clock columns (they legitimately differ between an interrupted run and another)."""
    with open(path) as f:
        return [{k: v for k, v in row.items() if k != "wall_s" and not k.startswith("time/")}
                for row in csv.DictReader(f)]


def optimizer_states(agent: SAC) -> list[int]:
    return [len(agent.actor_opt.state), len(agent.critic_opt.state), len(agent.temperature.opt.state)]


class RecordingSAC(SAC):
    """core's SAC, plus task hooks that record the buffer and optimisers as the trainer leaves them (no RNG use)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.events, self.buffer, self.snapshot = [], None, None  # buffer, snapshot: set by the test

    def task_start(self, task_index: int) -> None:
        self.events.append(("start", task_index, len(self.buffer), optimizer_states(self)))

    def task_end(self, task_index: int, buffer) -> None:
        data = buffer.transitions(buffer.added - buffer.size, buffer.added)
        self.events.append(("end", task_index, len(buffer), data["episode_end"].nonzero().flatten().tolist(),
                            data["obs"][:, -2:].unique(dim=0).tolist()))
        if task_index == 1:  # what a kill after the last episode's checkpoint leaves behind
            shutil.copytree(self.buffer_run_dir, self.snapshot)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted in-process run: (run dir, trainer, summary, the copy taken in the last end hook)."""
    run_dir, snapshot = tmp_path_factory.mktemp("straight"), tmp_path_factory.mktemp("snap") / "run"
    shared = {task: built(task, TINY["seed"])[0] for task in sequence_tasks(TINY["sequence"])}  # reseeded per eval
    trainer = make_trainer(tiny_config(), RecordingSAC, run_dir, eval_envs=shared)
    trainer.agent.buffer, trainer.agent.buffer_run_dir, trainer.agent.snapshot = trainer.buffer, run_dir, snapshot
    summary = trainer.train()
    return run_dir, trainer, summary, snapshot


def test_hooks_in_order_buffer_emptied_and_truncated_at_each_switch(straight):
    _, trainer, summary, _ = straight
    events = trainer.agent.events
    assert [e[:2] for e in events] == [("start", 0), ("end", 0), ("start", 1), ("end", 1)]
    (_, _, size0, _), (_, _, size1, ends0, ids0), (_, _, size2, optims), (_, _, size3, ends1, ids1) = events
    assert size0 == 0 and size2 == 0, "each task starts with an empty buffer"
    assert optims == [0, 0, 0], "the optimisers' moments were reset at the switch"
    # each end hook sees its own task's 300 transitions: a full 200-step episode, then one cut at 100 by the switch
    assert size1 == size3 == 300 and ends0 == ends1 == [199, 299]
    assert ids0 == [[1.0, 0.0]] and ids1 == [[0.0, 1.0]], "the one-hot task id of the task trained"
    # CW's schedule per task: bursts of 50 updates after steps 150, 200, 250 of each task (counted from 0)
    assert summary["status"] == "complete" and summary["step"] == 600 and summary["updates"] == 2 * 3 * 50


def test_a_finished_run_relaunched_keeps_the_record_of_its_machine(straight):
    run_dir, _, summary, _ = straight
    assert summary["device"] == ("cuda" if torch.cuda.is_available() else "cpu") and summary["torch_threads"] == 1
    try:
        again = make_trainer(tiny_config(torch_threads=2), RecordingSAC, run_dir).train()  # finished: returns at once
    finally:
        torch.set_num_threads(1)
    assert again["torch_threads"] == 1 and json.loads((run_dir / "summary.json").read_text())["torch_threads"] == 1


def test_one_evaluation_row_per_task_per_evaluation(straight):
    run_dir, _, summary, _ = straight
    evals = rows(run_dir / "eval.csv")
    assert [(r["step"], r["task_index"], r["task"], r["training_task"]) for r in evals] == [
        ("300", "0", "mw-handle-press-side", "0"), ("300", "1", "mw-faucet-close", "0"),
        ("600", "0", "mw-handle-press-side", "1"), ("600", "1", "mw-faucet-close", "1")]
    for row in evals:
        assert row["episodes"] == "1" and 0.0 <= float(row["success"]) <= 1.0
        assert float(row["return"]) > 0 and float(row["return_deterministic"]) > 0
    assert summary["final_success"] == pytest.approx(sum(float(r["success"]) for r in evals[2:]) / 2)
    assert summary["tasks"] == 2


def test_sigkill_just_after_the_switch_checkpoint_then_resume_gives_the_same_rows(straight, tmp_path):
    """The real entry point, killed after the checkpoint written at the switch's episode end: the resumed run redoes
    task 0's end hook, the evaluation at the switch (its rows are rewound) and the switch, then trains task 1."""
    run_dir = straight[0]
    overrides = [f"{k}={v}" for k, v in TINY.items()] + ["wandb.mode=disabled", f"hydra.run.dir={tmp_path}"]
    command = [sys.executable, "-m", "core.continual", *overrides]
    env = dict(os.environ, MUJOCO_GL="disable", WANDB_SILENT="true")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    at_switch = tmp_path / "replay" / f"{200:012d}-{300:012d}.pt"  # written by the checkpoint at step 300
    deadline = time.time() + 240
    while not at_switch.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into the evaluation at the switch: its rows must be rewound
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert rows(tmp_path / "eval.csv") == rows(run_dir / "eval.csv")
    assert rows(tmp_path / "train.csv") == rows(run_dir / "train.csv")
    # the emptied buffer's chunks are gone; task 1's are those of its checkpoints at steps 500 and 600
    assert sorted(p.name for p in (tmp_path / "replay").iterdir()) == [f"{300:012d}-{500:012d}.pt",
                                                                       f"{500:012d}-{600:012d}.pt"]
    run = load_sequence_run(tmp_path)  # what the metrics read from the entry point's run directory
    assert (run.name, run.tasks, run.status, run.steps.tolist()) == ("pair@300", sequence_tasks("pair"), "complete",
                                                                    [300, 600])
    assert run.success.shape == (2, 2) and ((run.success >= 0) & (run.success <= 1)).all()


def test_resume_from_the_last_checkpoint_of_task_1_gives_the_same_rows(straight):
    """The copy taken in task 1's end hook holds the checkpoint of the last episode's end: resuming it rebuilds
    task 1's env, refills the ring from task 1's replay chunks, redoes the end hook and the final evaluation."""
    run_dir, trainer, _, snapshot = straight
    resumed = make_trainer(tiny_config(), SAC, snapshot, eval_envs=trainer.eval_envs)
    summary = resumed.train()
    assert summary["resumed"] is True and summary["status"] == "complete"
    assert resumed.task_index == 1 and len(resumed.buffer) == 300 and resumed.buffer.added == 600
    assert rows(snapshot / "eval.csv") == rows(run_dir / "eval.csv")
    assert rows(snapshot / "train.csv") == rows(run_dir / "train.csv")


def test_buffer_and_optimisers_are_kept_at_a_switch_when_not_asked(straight, tmp_path):
    trainer = make_trainer(tiny_config(reset_buffer=False, reset_optimizer=False), SAC, tmp_path,
                           eval_envs=straight[1].eval_envs)
    trainer.start_task(0)
    for _ in range(64):
        trainer.collect()
    trainer.agent.update(trainer.agent.sample(trainer.buffer))
    trainer.start_task(1)
    assert len(trainer.buffer) == 64 and min(optimizer_states(trainer.agent)) > 0
    assert trainer.env.task == "mw-faucet-close"


def test_reset_optimizers_finds_every_adam_of_sac():
    agent = SAC(tiny_config(), 41, 4, torch.device("cpu"))
    agent.update(Batch(torch.randn(8, 41), torch.rand(8, 4) * 2 - 1, torch.randn(8, 1), torch.randn(8, 41),
                       torch.full((8, 1), 0.99)))
    assert min(optimizer_states(agent)) > 0
    assert reset_optimizers(agent) == 3 and optimizer_states(agent) == [0, 0, 0]


def test_sequences_by_name_list_and_budget():
    assert sequence_tasks("CW20") == sequence_tasks("CW10") * 2 and len(sequence_tasks("CW10")) == 10
    assert sequence_tasks("mw-hammer+mw-push") == sequence_tasks("[mw-hammer, mw-push]") == ["mw-hammer", "mw-push"]
    assert sequence_name("CW10", 1_000_000) == "CW10" and sequence_name("CW20", 1_000_000) == "CW20"
    assert sequence_name("CW10", 100_000) == "CW10@100k"  # a reduced CW10 is never called CW10
    assert sequence_name("[mw-hammer,mw-push]", 400) == "mw-hammer+mw-push@400"
    assert sequence_name("mw-hammer", 1_000_000) == "mw-hammer@1M"  # a single-task reference run


@pytest.mark.parametrize("changes, expected", [
    (dict(sequence="CW11"), "did you mean CW10"),
    (dict(sequence="mw-hammer+mw-pushh"), "close matches: mw-push"),
    (dict(steps_per_task=0), "steps_per_task must be >= 1"),
    (dict(eval_every=200), "must divide steps_per_task"),
    (dict(task="mw-hammer"), "pass sequence=, not task="),
    (dict(steps=5000), "pass steps_per_task=, not steps="),
])
def test_bad_sequence_settings_fail_in_one_line(changes, expected):
    cfg = ContinualSACConfig(**(TINY | changes))
    with pytest.raises(ConfigError) as err:
        validate_sequence(cfg)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_unknown_task_in_sequence_ends_the_entry_point_in_one_line_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "existing"
    run_dir.mkdir()
    (run_dir / "eval.csv").write_text("keep me")
    env = dict(os.environ, MUJOCO_GL="disable")
    out = subprocess.run([sys.executable, "-m", "core.continual", "sequence=mw-hammer+mw-pushh", "steps_per_task=400",
                          f"hydra.run.dir={run_dir}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1 and "mw-push" in lines[0], out.stderr
    assert [p.name for p in run_dir.iterdir()] == ["eval.csv"] and (run_dir / "eval.csv").read_text() == "keep me"
