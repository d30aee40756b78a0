"""CW's SAC: the networks' layout and heads, the per-task temperatures, CW's defaults (no environment needed)."""

import copy
import math

import pytest
import torch
from torch import nn

from core.buffers import Batch
from core.continual import ContinualConfig
from ideas.learnable_dropout.agent import CWSAC, CWSACConfig
from ideas.learnable_dropout.networks import LEAKY_SLOPE, Actor, Critic, Trunk

OBS_LEN, ACT, TASKS = 39, 4, 3


def batch(task: int, n: int = 16, tasks: int = TASKS, seed: int = 0) -> Batch:
    """Random transitions of one task: the observation's last `tasks` entries are its one-hot id."""
    g = torch.Generator().manual_seed(seed)
    obs, next_obs = torch.randn(n, OBS_LEN + tasks, generator=g), torch.randn(n, OBS_LEN + tasks, generator=g)
    for o in (obs, next_obs):
        o[:, OBS_LEN:] = nn.functional.one_hot(torch.full((n,), task), tasks).float()
    return Batch(obs, torch.rand(n, ACT, generator=g) * 2 - 1, torch.randn(n, 1, generator=g), next_obs,
                 torch.full((n, 1), 0.99))


def tiny(**changes) -> CWSACConfig:
    return CWSACConfig(**(dict(sequence="mw-hammer+mw-push+mw-reach", hidden=16, depth=3, batch_size=16) | changes))


def test_defaults_are_continual_worlds():
    cfg = CWSACConfig()
    assert (cfg.hidden, cfg.depth, cfg.lr, cfg.batch_size, cfg.gamma, cfg.tau) == (256, 4, 1e-3, 128, 0.99, 0.005)
    assert (cfg.buffer_size, cfg.warmup_steps, cfg.update_after, cfg.update_every) == (1_000_000, 10_000, 1000, 50)
    assert (cfg.eval_every, cfg.eval_episodes, cfg.eval_deterministic_episodes) == (20_000, 10, 1)
    assert (cfg.steps_per_task, cfg.sequence, cfg.reset_buffer, cfg.reset_optimizer) == (1_000_000, "CW10", True, True)
    assert (cfg.l2_coef, cfg.ewc_coef, cfg.packnet_retrain_steps) == (1e5, 1e4, 100_000)
    assert isinstance(cfg, ContinualConfig)
    agent = CWSAC(tiny(), OBS_LEN + TASKS, ACT, torch.device("cpu"))
    assert agent.target_entropy == pytest.approx(-4.0, abs=1e-3)  # |A| log(0.089 sqrt(2 pi e))
    assert torch.equal(agent.log_alpha.detach(), torch.ones(TASKS))


def test_trunk_layout_and_dropout_slots():
    made = []

    def dropout(layer: int, width: int) -> nn.Module:
        made.append((layer, width))
        return nn.Dropout(0.1)

    trunk = Trunk(10, 8, 4, dropout)
    kinds = [type(m) for m in trunk.net]
    assert kinds == [nn.Linear, nn.LayerNorm, nn.Tanh, nn.Dropout] + [nn.Linear, nn.LeakyReLU, nn.Dropout] * 3
    assert made == [(0, 8), (1, 8), (2, 8), (3, 8)] and trunk.net[5].negative_slope == LEAKY_SLOPE
    assert [type(m) for m in Trunk(10, 8, 2).net] == [nn.Linear, nn.LayerNorm, nn.Tanh, nn.Identity, nn.Linear,
                                                      nn.LeakyReLU, nn.Identity]


def test_the_task_id_picks_the_head_and_the_trunk_never_sees_it():
    actor, critic = Actor(OBS_LEN, ACT, TASKS, 16, 3), Critic(OBS_LEN, ACT, TASKS, 16, 3)
    a, b = batch(0, 4), batch(1, 4)
    b = b._replace(obs=torch.cat([a.obs[:, :OBS_LEN], b.obs[:, OBS_LEN:]], 1))  # same state, other task id
    assert torch.equal(actor.trunk(a.obs[:, :OBS_LEN]), actor.trunk(b.obs[:, :OBS_LEN]))
    mean_a, std_a = actor.gaussian(a.obs)
    mean_b, _ = actor.gaussian(b.obs)
    assert not torch.allclose(mean_a, mean_b)
    every = actor.mu.linear(actor.trunk(a.obs[:, :OBS_LEN])).view(4, TASKS, ACT)
    assert torch.allclose(mean_a, every[:, 0]) and std_a.shape == (4, ACT)  # row's head = its task's slice
    assert critic(a.obs, a.action).shape == (4, 1)
    assert not torch.allclose(critic(a.obs, a.action), critic(b.obs, a.action))


def test_an_update_on_one_task_moves_only_that_tasks_temperature_and_heads():
    agent = CWSAC(tiny(), OBS_LEN + TASKS, ACT, torch.device("cpu"))
    heads = agent.actor.mu.linear.weight.detach().view(TASKS, ACT, -1).clone()
    metrics = agent.update(batch(1))
    assert all(torch.isfinite(v) for v in metrics.values())
    alpha = agent.log_alpha.detach()
    assert alpha[1] != 1.0 and alpha[0] == 1.0 and alpha[2] == 1.0
    after = agent.actor.mu.linear.weight.detach().view(TASKS, ACT, -1)
    assert torch.equal(after[0], heads[0]) and torch.equal(after[2], heads[2]) and not torch.equal(after[1], heads[1])


def test_state_dict_round_trip_continues_identically():
    a = CWSAC(tiny(), OBS_LEN + TASKS, ACT, torch.device("cpu"))
    for k in range(3):
        a.update(batch(0, seed=k))
    b = CWSAC(tiny(), OBS_LEN + TASKS, ACT, torch.device("cpu"))
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # as from a checkpoint file: no tensor shared with `a`
    torch.manual_seed(5)
    out_a = a.update(batch(0, seed=9))
    torch.manual_seed(5)
    out_b = b.update(batch(0, seed=9))
    assert all(torch.equal(out_a[k], out_b[k]) for k in out_a)
    assert all(torch.equal(p, q) for p, q in zip(a.actor.parameters(), b.actor.parameters(), strict=True))


def test_entropy_target_follows_the_output_std():
    agent = CWSAC(tiny(target_output_std=0.5), OBS_LEN + TASKS, ACT, torch.device("cpu"))
    assert agent.target_entropy == pytest.approx(ACT * math.log(0.5 * math.sqrt(2 * math.pi * math.e)))
