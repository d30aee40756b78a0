"""Critic first layers for core.networks.EnsembleMLP(first_layer=...): each maps (members, B, in) -> (members, B, out)
for the twin critics at once.

    linear          core's EnsembleLinear (today's SAC)
    linear_matched  a wider first hidden layer: Linear(in, W) -> ReLU -> Linear(W, out), W chosen so the critic has
                    the Sinc critic's parameter count (the agent builds the MLP one layer shallower around it)
    fourier         features [x, sin(f x), cos(f x)] for f = 1..K per input, then one linear map
    sinc            SincKAN (Yu et al. 2024): sum_i sum_m sum_k c_jimk sinc(tanh(x_i) / h_m + k) + x @ alpha + beta,
                    h_m = 1 / (init_h (1 + m)), nodes k in [-floor(d/2), ceil(d/2)] (shared/reference/kan.md)
    pykan           pykan's KANLayer per member, taking [0] of its 4-tuple (B-spline + SiLU base)

The Fourier and Sinc layers are one basis expansion and ONE batched matmul: the skip term x @ alpha is folded into
the matmul as one more feature per input, and when both critics see the same input (EnsembleMLP expands a (B, in)
batch with stride 0) the expansion is computed once and shared.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from core.networks import EnsembleLinear

FIRST_LAYERS = ("linear", "linear_matched", "fourier", "sinc", "pykan")
TANH_SATURATION = 2.0  # tanh'(2) = 0.07: beyond |x| = 2 a tanh-squashed input barely moves the basis


def _batched(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """features(x) @ weight (+ bias) per member; the features of an input shared by all members are computed once."""
    shared = x.stride(0) == 0
    feats = layer.features(x[0] if shared else x)
    if shared:
        feats = feats.expand(weight.shape[0], *feats.shape)
    return torch.bmm(feats, weight) if bias is None else torch.baddbmm(bias, feats, weight)


class WideFirstLayer(nn.Module):
    """Linear(in, width) -> ReLU -> Linear(width, out) per member: the parameter-matched MLP's wider first layer."""

    def __init__(self, members: int, in_dim: int, width: int, out_dim: int) -> None:
        super().__init__()
        self.wide = EnsembleLinear(members, in_dim, width)
        self.out = EnsembleLinear(members, width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.wide(x)))


class FourierLayer(nn.Module):
    """Per input x_i the features [x_i, sin(f x_i) for f = 1..K, cos(f x_i) for f = 1..K], then one linear map.

    Weight rows are ordered (input i, feature q): row i * (1 + 2K) + q.
    """

    def __init__(self, members: int, in_dim: int, out_dim: int, frequencies: int) -> None:
        super().__init__()
        self.members, self.in_dim, self.out_dim, self.frequencies = members, in_dim, out_dim, frequencies
        self.per_input = 1 + 2 * frequencies
        self.register_buffer("freqs", torch.arange(1, frequencies + 1, dtype=torch.float32), persistent=False)
        self.weight = nn.Parameter(torch.empty(members, in_dim * self.per_input, out_dim))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_dim))
        bound = math.sqrt(6.0 / (in_dim * self.per_input + out_dim))  # Xavier-uniform over the feature fan-in
        nn.init.uniform_(self.weight, -bound, bound)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in * (1 + 2K))."""
        u = x.unsqueeze(-1) * self.freqs
        return torch.cat([x.unsqueeze(-1), torch.sin(u), torch.cos(u)], -1).flatten(-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _batched(self, x, self.weight, self.bias)


class SincLayer(nn.Module):
    """Vectorised SincKAN layer (the reference's SincLayers, skip_mode 1, 'inverse' decay) for `members` critics.

    Weight rows are ordered (input i, feature q): q = 0 is the skip alpha_i (when skip), then the len_h * (d + 1)
    sinc coefficients c_i,m,k with m outer. Coefficients start at N(0, 1) / sqrt(in * len_h * (d + 1)) (the
    reference's scaled form; unscaled N(0, 1) would start a 261-input layer with outputs of size ~50), alpha at
    N(0, 1) / sqrt((in + out) / 2) and beta at 0, as in the reference.
    """

    def __init__(self, members: int, in_dim: int, out_dim: int, degree: int = 8, len_h: int = 1,
                 init_h: float = 2.0, skip: bool = True, tanh: bool = True) -> None:
        super().__init__()
        self.members, self.in_dim, self.out_dim = members, in_dim, out_dim
        self.degree, self.len_h, self.init_h, self.skip, self.tanh = degree, len_h, init_h, skip, tanh
        nodes = torch.arange(-math.floor(degree / 2), math.ceil(degree / 2) + 1, dtype=torch.float64)
        inv_h = init_h * (1 + torch.arange(len_h, dtype=torch.float64))  # 1 / h_m
        # basis q = (m, k): sinc(t * inv_h[m] + nodes[k]), evaluated as one addcmul over the flattened (m, k) axis
        self.register_buffer("scale", inv_h.repeat_interleave(degree + 1).float(), persistent=False)
        self.register_buffer("shift", nodes.repeat(len_h).float(), persistent=False)
        self.bases = len_h * (degree + 1)
        self.per_input = self.bases + int(skip)
        coef = torch.randn(members, in_dim, self.bases, out_dim) / math.sqrt(in_dim * self.bases)
        if skip:
            alpha = torch.randn(members, in_dim, 1, out_dim) / math.sqrt((in_dim + out_dim) / 2)
            coef = torch.cat([alpha, coef], 2)
        self.weight = nn.Parameter(coef.reshape(members, in_dim * self.per_input, out_dim))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_dim)) if skip else None

    def coefficients(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Views of the weight: c (members, in, len_h, d + 1, out) and alpha (members, in, out) or None."""
        w = self.weight.view(self.members, self.in_dim, self.per_input, self.out_dim)
        c = w[:, :, int(self.skip):].reshape(self.members, self.in_dim, self.len_h, self.degree + 1, self.out_dim)
        return c, (w[:, :, 0] if self.skip else None)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in * per_input): [x_i, sinc(t_i / h_m + k) ...] per input, t = tanh(x) or x."""
        t = torch.tanh(x) if self.tanh else x
        phi = torch.sinc(torch.addcmul(self.shift, t.unsqueeze(-1), self.scale))
        if self.skip:
            phi = torch.cat([x.unsqueeze(-1), phi], -1)
        return phi.flatten(-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _batched(self, x, self.weight, self.bias)


class PykanLayer(nn.Module):
    """One pykan KANLayer per member (pykan has no batched form): y_m = KANLayer_m(x_m)[0]."""

    def __init__(self, members: int, in_dim: int, out_dim: int, grid: int = 5, k: int = 3) -> None:
        super().__init__()
        from kan import KANLayer  # imported here: pykan pulls in sympy, sklearn and pandas (~2 s)

        # base_fun passed per layer: pykan's default SiLU() is one module object shared by every KANLayer
        self.kan = nn.ModuleList([KANLayer(in_dim, out_dim, num=grid, k=k, base_fun=nn.SiLU(), save_plot_data=False)
                                  for _ in range(members)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([layer(x[m])[0] for m, layer in enumerate(self.kan)])


def sinc_params(in_dim: int, out_dim: int, degree: int, len_h: int, skip: bool) -> int:
    """Parameters of one member's Sinc layer: in * out * (len_h (d + 1) + skip) + out * skip."""
    return in_dim * out_dim * (len_h * (degree + 1) + int(skip)) + out_dim * int(skip)


def matched_width(in_dim: int, hidden: int, next_out: int, sinc_layer_params: int) -> int:
    """Width W of linear_matched's first hidden layer so that Linear(in, W) + Linear(W, next_out) holds as many
    parameters as the Sinc layer + Linear(hidden, next_out) it stands for (next_out: the following layer's width)."""
    return max(1, round((sinc_layer_params + hidden * next_out) / (in_dim + 1 + next_out)))


def useful_range(name: str, degree: int = 8, init_h: float = 2.0, tanh: bool = True, grid: int = 5,
                 k: int = 3) -> float:
    """Half-width of the normalised-input interval where a basis resolves its input (inf: no such limit).

    sinc: tanh saturation (|x| > 2) or, without tanh, the node span |x| <= floor(d/2) h_0; fourier: one period of the
    lowest frequency, |x| <= pi (beyond it sin/cos repeat); pykan: the extended grid 1 + 2k/num, outside which the
    spline part is exactly zero.
    """
    if name == "sinc":
        return TANH_SATURATION if tanh else math.floor(degree / 2) / init_h
    if name == "fourier":
        return math.pi
    if name == "pykan":
        return 1.0 + 2.0 * k / grid
    return math.inf


def make_first_layer(name: str, hidden: int, degree: int = 8, len_h: int = 1, init_h: float = 2.0,
                     skip: bool = True, tanh: bool = True, frequencies: int = 4, grid: int = 5,
                     k: int = 3) -> Callable[[int, int, int], nn.Module]:
    """The EnsembleMLP first_layer factory for `name` (one of FIRST_LAYERS). For linear_matched the MLP around it must
    be one layer shallower: its out_dim is then the width of the layer after the Sinc critic's first hidden layer."""
    if name == "linear":
        return EnsembleLinear
    if name == "linear_matched":
        def wide(members: int, in_dim: int, out_dim: int) -> nn.Module:
            width = matched_width(in_dim, hidden, out_dim, sinc_params(in_dim, hidden, degree, len_h, skip))
            return WideFirstLayer(members, in_dim, width, out_dim)
        return wide
    if name == "fourier":
        return lambda members, in_dim, out_dim: FourierLayer(members, in_dim, out_dim, frequencies)
    if name == "sinc":
        return lambda members, in_dim, out_dim: SincLayer(members, in_dim, out_dim, degree, len_h, init_h, skip, tanh)
    if name == "pykan":
        return lambda members, in_dim, out_dim: PykanLayer(members, in_dim, out_dim, grid, k)
    raise ValueError(f"unknown first layer {name!r}; valid choices: {', '.join(FIRST_LAYERS)}")
