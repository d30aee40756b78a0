"""Hand computations for the loss tests: networks evaluated by explicit float64 matmuls from their weights, so an
expected value never goes through the module code it checks."""

from __future__ import annotations

import copy

import torch
from torch import nn

from core.networks import EnsembleLinear


def layers_of(net: nn.Module, member: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(W (in, out), b (out,)) in float64 for every Linear of an MLP, or of one member of an ensemble MLP."""
    if member is None:
        return [(m.weight.detach().double().T, m.bias.detach().double()) for m in net.modules()
                if isinstance(m, nn.Linear)]
    return [(m.weight.detach()[member].double(), m.bias.detach()[member, 0].double()) for m in net.modules()
            if isinstance(m, EnsembleLinear)]


def dense(x: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """x @ W + b with a ReLU between layers (none after the last)."""
    x = x.double()
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        if i < len(layers) - 1:
            x = x.clamp_min(0.0)
    return x


def twin_min(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """min over the two ensemble members, by hand."""
    return torch.minimum(dense(x, layers_of(critic, 0)), dense(x, layers_of(critic, 1)))


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean of squared differences over every element."""
    return ((a.double() - b.double()) ** 2).sum() / a.numel()


def masked_mse(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over valid rows of the per-row mean squared difference."""
    per_row = ((a.double() - b.double()) ** 2).reshape(a.shape[0], -1).mean(1)
    keep = valid.reshape(-1).double()
    return (per_row * keep).sum() / keep.sum()


def snapshot(agent, names: tuple[str, ...]) -> dict[str, nn.Module]:
    """Deep copies of the agent's networks, taken before an update changes them."""
    return {name: copy.deepcopy(getattr(agent, name)) for name in names}


def move_targets(agent, scale: float = 0.3) -> None:
    """Shift every target network away from its online network, so a target computed from the wrong one shows."""
    with torch.no_grad():
        for name, net in vars(agent).items():
            if name.endswith("_target"):
                for p in net.parameters():
                    p.add_(scale * torch.randn_like(p))


def polyak(target: nn.Module, online: nn.Module, tau: float) -> list[torch.Tensor]:
    """(1 - tau) target + tau online, parameter by parameter."""
    return [(1 - tau) * t.detach().double() + tau * o.detach().double()
            for t, o in zip(target.parameters(), online.parameters(), strict=True)]
