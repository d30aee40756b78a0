"""The divergence guard: a non-finite value stops the run with status `diverged`, the step and the quantity, never
reaches a checkpoint, and a re-run says so instead of resuming into it."""

import json

import pytest
import torch

from core.checkpoint import first_nonfinite, load_checkpoint
from core.envs import make_env
from core.launch import make_buffer
from core.logger import Logger
from core.sac import SAC, SACConfig
from core.trainer import Diverged, Trainer
from tests.test_entrypoints import TINY, run

INJECT_AT_UPDATE = 10


class NaNInjectingSAC(SAC):
    """SAC whose actor gets a NaN weight right after its 10th update (fault injection, real everything else)."""

    updates = 0

    def update(self, batch):
        metrics = super().update(batch)
        self.updates += 1
        if self.updates == INJECT_AT_UPDATE:
            with torch.no_grad():
                self.actor.net[0].weight[0, 0] = float("nan")
        return metrics


def test_injected_nan_stops_at_the_next_action_and_leaves_the_checkpoint_finite(tmp_path):
    torch.set_num_threads(1)
    cfg = SACConfig(task="cartpole-swingup", steps=1000, action_repeat=4, warmup_steps=250, eval_every=1000,
                    eval_episodes=1, checkpoint_every=250, hidden=16, batch_size=16, wandb=SACConfig().wandb)
    cfg.wandb.mode = "disabled"
    env, eval_env = make_env(cfg.task, 0, 4), make_env(cfg.task, 1, 4)
    agent = NaNInjectingSAC(cfg, env.obs_dim, env.act_dim, torch.device("cpu"))
    logger = Logger(tmp_path, {}, "disabled", "p", None, "g", "n")
    trainer = Trainer(cfg, env, eval_env, agent, make_buffer(cfg, env.obs_dim, env.act_dim, "cpu"), logger,
                      tmp_path, torch.device("cpu"))
    with pytest.raises(Diverged) as err:
        trainer.train()
    # updates start after step 250; the 10th follows step 260, so the action chosen at step 260 is the first NaN
    assert err.value.step == cfg.warmup_steps + INJECT_AT_UPDATE
    assert err.value.quantity == "action (actor.net.0.weight)"
    state = load_checkpoint(tmp_path)  # the episode-end checkpoint at step 250, from before the NaN
    assert state["counters"]["step"] == 250 and first_nonfinite(state["agent"]) is None


def test_first_nonfinite_names_the_tensor():
    tree = {"critic": {"w": torch.ones(2), "b": torch.tensor([1.0, float("inf")])}, "steps": torch.tensor([3])}
    assert first_nonfinite(tree) == "critic.b"
    assert first_nonfinite({"x": [1.0, float("nan")]}) == "x.1"
    assert first_nonfinite({"x": torch.zeros(3)}) is None


def test_exploding_learning_rate_ends_as_diverged_and_is_not_resumed(tmp_path):
    args = ["core.run", "task=cartpole-swingup", *TINY, "lr=1e30", "wandb.mode=disabled", f"hydra.run.dir={tmp_path}"]
    out = run(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged_at_step"] > 250 and summary["nonfinite"]
    assert first_nonfinite(load_checkpoint(tmp_path)["agent"]) is None  # the last checkpoint is still usable
    again = run(*args)
    assert again.returncode == 0 and "diverged" in again.stderr and "not resumed" in again.stderr
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
