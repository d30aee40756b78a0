"""SAC: the update runs, its losses are finite, the target moves by tau, the squashed log-prob is right."""

import math

import numpy as np
import torch

from core.buffers import ReplayBuffer
from core.sac import SAC, Actor, SACConfig

OBS, ACT = 5, 2


def filled_buffer() -> ReplayBuffer:
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(OBS, ACT, 300)
    for i in range(300):
        buf.add(rng.normal(size=OBS).astype(np.float32), rng.uniform(-1, 1, ACT).astype(np.float32),
                float(rng.normal()), rng.normal(size=OBS).astype(np.float32), i % 100 == 99, False)
    return buf


def test_update_finite_and_target_is_polyak():
    torch.manual_seed(0)
    agent = SAC(SACConfig(hidden=32, batch_size=32, tau=0.01), OBS, ACT, torch.device("cpu"))
    buf = filled_buffer()
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    target_before = [p.detach().clone() for p in agent.critic_target.parameters()]
    alpha_before = agent.temperature.log_alpha.item()
    m = agent.update(buf.sample(32, 0.99))
    assert all(torch.isfinite(v) and not v.requires_grad for v in m.values())
    for old, new, online in zip(target_before, agent.critic_target.parameters(), agent.critic.parameters(),
                                strict=True):
        torch.testing.assert_close(new, 0.99 * old + 0.01 * online.detach())
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, agent.actor.parameters(), strict=True))
    assert agent.temperature.log_alpha.item() != alpha_before
    for _ in range(50):
        m = agent.update(buf.sample(32, 0.99))
    assert all(torch.isfinite(v) for v in m.values())


def test_actions_in_bounds_and_eval_is_deterministic():
    torch.manual_seed(0)
    agent = SAC(SACConfig(hidden=32), OBS, ACT, torch.device("cpu"))
    obs = torch.randn(64, OBS)
    assert agent.act(obs, explore=True).abs().max() <= 1
    torch.testing.assert_close(agent.act(obs, explore=False), agent.act(obs, explore=False))


def test_tanh_gaussian_log_prob_by_change_of_variables():
    """log pi(a) = log N(u; mu, sigma) - sum log(1 - tanh(u)^2), checked against torch.distributions."""
    torch.manual_seed(0)
    actor = Actor(OBS, ACT, 16, 1)
    obs = torch.randn(8, OBS)
    torch.manual_seed(1)
    action, logp, _ = actor(obs)
    mean, log_std = actor.net(obs).chunk(2, -1)
    log_std = -5 + 0.5 * 7 * (torch.tanh(log_std) + 1)
    u = torch.atanh(action.clamp(-1 + 1e-6, 1 - 1e-6))
    normal = torch.distributions.Normal(mean, log_std.exp())
    expected = (normal.log_prob(u) - torch.log(1 - action.pow(2) + 1e-12)).sum(-1, keepdim=True)
    torch.testing.assert_close(logp, expected, rtol=1e-3, atol=1e-3)
    assert math.isfinite(logp.sum().item())
