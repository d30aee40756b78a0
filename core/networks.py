"""Network pieces shared by the agents: plain MLPs and ensembles (twin critics as ONE batched network)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EnsembleLinear(nn.Module):
    """`members` independent Linear layers evaluated as one batched matmul: input (members, B, in) -> (members, B, out).

    Twin critics as one network halve the kernel launches on a GPU and keep the CPU in large matmuls.
    """

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform per member, zero bias (the FlowRL initialisation)."""
        bound = math.sqrt(6.0 / (self.weight.shape[1] + self.weight.shape[2]))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with a scale and shift per member: (members, B, H) -> (members, B, H). A plain nn.LayerNorm on the
    stacked tensor would make the twins share these parameters."""

    def __init__(self, members: int, features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, features))
        self.bias = nn.Parameter(torch.zeros(members, 1, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, F.layer_norm(x, x.shape[-1:]), self.weight)


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every nn.Linear (FlowRL's `weights_init_`)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def mlp(in_dim: int, hidden: int, out_dim: int, depth: int = 2, act: type[nn.Module] = nn.ReLU,
        layer_norm: bool = False) -> nn.Sequential:
    """`depth` hidden layers of width `hidden` (each Linear [-> LayerNorm] -> act), then a Linear to out_dim."""
    layers, d = [], in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden)] + ([nn.LayerNorm(hidden)] if layer_norm else []) + [act()]
        d = hidden
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class EnsembleMLP(nn.Module):
    """`members` MLPs sharing an input, evaluated together: (B, in) or (members, B, in) -> (members, B, out)."""

    def __init__(self, members: int, in_dim: int, hidden: int, out_dim: int, depth: int = 2,
                 act: type[nn.Module] = nn.ReLU, layer_norm: bool = False) -> None:
        super().__init__()
        self.members = members
        layers, d = [], in_dim
        for _ in range(depth):
            norm = [EnsembleLayerNorm(members, hidden)] if layer_norm else []
            layers += [EnsembleLinear(members, d, hidden), *norm, act()]
            d = hidden
        layers.append(EnsembleLinear(members, d, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.expand(self.members, *x.shape)
        return self.net(x)


def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * online, in place (lerp_ keeps it one fused kernel per tensor)."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)
