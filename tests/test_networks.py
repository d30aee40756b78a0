"""Network seams: the critic factory a subclass overrides, EnsembleMLP's first-layer factory, the generic vmapped
ensemble against a loop over its members, and the temperature module."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from core.buffers import ReplayBuffer
from core.networks import EnsembleLinear, EnsembleMLP, Temperature, VmapEnsemble
from core.sac import SAC, SACConfig

OBS, ACT = 5, 2


class DoubledFirstLayer(nn.Module):
    """A first layer that is not an EnsembleLinear: 2 * (x W + b), with its own parameters per member."""

    def __init__(self, members: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.inner = EnsembleLinear(members, in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * self.inner(x)


class DoubledSAC(SAC):
    def make_critic(self, obs_dim: int, act_dim: int) -> nn.Module:
        return EnsembleMLP(2, obs_dim + act_dim, self.cfg.hidden, 1, self.cfg.depth, first_layer=DoubledFirstLayer)


def test_first_layer_factory_replaces_only_the_first_layer():
    torch.manual_seed(0)
    plain = EnsembleMLP(2, 7, 16, 1)
    torch.manual_seed(0)
    swapped = EnsembleMLP(2, 7, 16, 1, first_layer=DoubledFirstLayer)
    assert isinstance(swapped.net[0], DoubledFirstLayer) and isinstance(swapped.net[2], EnsembleLinear)
    with torch.no_grad():  # same draws: halve the first layer's weights and the two nets agree
        swapped.net[0].inner.weight.copy_(plain.net[0].weight / 2)
        swapped.net[0].inner.bias.copy_(plain.net[0].bias / 2)
    x = torch.randn(9, 7)
    torch.testing.assert_close(swapped(x), plain(x))


def test_sac_subclass_swaps_the_critic_and_keeps_targets_and_optimisers():
    torch.manual_seed(0)
    agent = DoubledSAC(SACConfig(hidden=16, batch_size=16), OBS, ACT, torch.device("cpu"))
    assert isinstance(agent.critic.net[0], DoubledFirstLayer)
    assert isinstance(agent.critic_target.net[0], DoubledFirstLayer)
    assert not any(p.requires_grad for p in agent.critic_target.parameters())
    optimised = {id(p) for group in agent.critic_opt.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in agent.critic.parameters()}
    buf = ReplayBuffer(OBS, ACT, 64)
    rng = np.random.default_rng(0)
    for _ in range(64):
        buf.add(rng.normal(size=OBS).astype(np.float32), rng.uniform(-1, 1, ACT).astype(np.float32), 1.0,
                rng.normal(size=OBS).astype(np.float32), False, False)
    before = agent.critic.net[0].inner.weight.detach().clone()
    metrics = agent.update(agent.sample(buf))
    assert torch.isfinite(metrics["train/critic_loss"])
    assert not torch.equal(before, agent.critic.net[0].inner.weight)


class Block(nn.Module):
    """A non-linear layer with a buffer: exercises parameters and buffers of the vmapped ensemble."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.register_buffer("shift", torch.randn(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.lin(x)) + self.shift


@pytest.mark.parametrize("per_member_input", [False, True])
def test_vmap_ensemble_equals_a_loop_over_members(per_member_input):
    torch.manual_seed(0)
    members = [Block() for _ in range(3)]
    copies = iter(copy.deepcopy(members))
    ensemble = VmapEnsemble(lambda: next(copies), 3)
    x = torch.randn(3, 8, 4) if per_member_input else torch.randn(8, 4)
    out = ensemble(x)
    expected = torch.stack([m(x[i] if per_member_input else x) for i, m in enumerate(members)])
    torch.testing.assert_close(out, expected)
    out.sum().backward()  # gradients reach the stacked parameters, one slice per member
    loss = sum(m(x[i] if per_member_input else x).sum() for i, m in enumerate(members))
    loss.backward()
    torch.testing.assert_close(ensemble.params[0].grad[1], members[1].lin.weight.grad)


def test_vmap_ensemble_members_are_independent():
    torch.manual_seed(0)
    ensemble = VmapEnsemble(lambda: nn.Linear(4, 2), 2)
    assert not torch.equal(ensemble.params[0][0], ensemble.params[0][1])
    assert sum(p.numel() for p in ensemble.parameters()) == 2 * (4 * 2 + 2)


def test_temperature_moves_alpha_towards_the_target_entropy():
    temperature = Temperature(init=0.1, target_entropy=-2.0, lr=0.1)
    low_entropy_logp = torch.full((32, 1), 5.0)  # entropy -5 < target -2: alpha must grow
    alpha = temperature.alpha()
    temperature.update(low_entropy_logp)
    assert temperature.alpha() > alpha and not temperature.alpha().requires_grad
