"""Network pieces shared by the agents: plain MLPs, ensembles (twin critics as ONE batched network) and SAC's
learned temperature."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


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
    """`members` MLPs sharing an input, evaluated together: (B, in) or (members, B, in) -> (members, B, out).

    `first_layer(members, in_dim, out_dim)` replaces the first EnsembleLinear with any module of the same shapes
    ((members, B, in) -> (members, B, out)): the seam for critics whose first layer is, e.g., a KAN layer.
    """

    def __init__(self, members: int, in_dim: int, hidden: int, out_dim: int, depth: int = 2,
                 act: type[nn.Module] = nn.ReLU, layer_norm: bool = False,
                 first_layer: Callable[[int, int, int], nn.Module] | None = None) -> None:
        super().__init__()
        self.members = members
        linear = EnsembleLinear
        layers, d = [], in_dim
        for i in range(depth + 1):
            out = hidden if i < depth else out_dim
            layers.append((first_layer if i == 0 and first_layer else linear)(members, d, out))
            if i < depth:
                layers += [EnsembleLayerNorm(members, hidden)] if layer_norm else []
                layers.append(act())
            d = out
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.expand(self.members, *x.shape)
        return self.net(x)


class VmapEnsemble(nn.Module):
    """`members` independently initialised copies of ANY module, evaluated as one vectorised call (torch.func.vmap):
    (B, ...) shared by all members, or (members, B, ...) one slice each -> (members, B, ...).

    The generic form (TD-MPC2's Ensemble) for layers that are not EnsembleLinear; EnsembleMLP stays the fast path.
    """

    def __init__(self, make: Callable[[], nn.Module], members: int) -> None:
        super().__init__()
        modules = [make() for _ in range(members)]
        params, buffers = stack_module_state(modules)
        self.members = members
        self.param_names, self.buffer_names = list(params), list(buffers)
        self.params = nn.ParameterList([nn.Parameter(params[n]) for n in self.param_names])
        for i, name in enumerate(self.buffer_names):
            self.register_buffer(f"buffer_{i}", buffers[name])
        self._base = [copy.deepcopy(modules[0]).to("meta")]  # a list: the stateless template is not a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        buffers = tuple(getattr(self, f"buffer_{i}") for i in range(len(self.buffer_names)))

        def one(params: tuple, bufs: tuple, xi: torch.Tensor) -> torch.Tensor:
            state = dict(zip(self.param_names, params, strict=True)) | dict(zip(self.buffer_names, bufs, strict=True))
            return functional_call(self._base[0], state, (xi,))

        shared = None if x.dim() == 2 else 0
        return vmap(one, in_dims=(0, 0, shared), randomness="different")(tuple(self.params), buffers, x)


class Temperature(nn.Module):
    """SAC's entropy temperature alpha = exp(log_alpha), learned towards a target entropy with its own Adam."""

    def __init__(self, init: float, target_entropy: float, lr: float, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init), device=device))
        self.target_entropy = target_entropy
        self.opt = torch.optim.Adam([self.log_alpha], lr=lr, fused=True)

    def alpha(self) -> torch.Tensor:
        """The current temperature, detached (a constant in the actor and critic losses)."""
        return self.log_alpha.exp().detach()

    def update(self, logp: torch.Tensor) -> torch.Tensor:
        """One step on -log_alpha * (log pi + target entropy); returns the detached loss."""
        loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()


def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * online, in place (lerp_ keeps it one fused kernel per tensor)."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)
